import type { Resolvers } from '../__generated__/resolvers-types.ts';
import { Case } from './Case.ts';
import { Mutation } from './Mutation.ts';
import { CaseConnection, Query } from './Query.ts';
import { Asset, Contact, Contract, Customer, InstalledProduct, Order } from './references.ts';

export const resolvers: Resolvers = { Query, Mutation, CaseConnection, Case, Customer, Contact, Order, Asset, Contract, InstalledProduct };
