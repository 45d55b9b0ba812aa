import type { Resolvers } from '../__generated__/resolvers-types.ts';
import { Account } from './Account.ts';
import { Contact } from './Contact.ts';
import { Contract } from './Contract.ts';
import { Customer } from './Customer.ts';
import { CustomerActivity, Mutation } from './Mutation.ts';
import { Opportunity } from './Opportunity.ts';
import { Query } from './Query.ts';
import { ServiceSubscription } from './ServiceSubscription.ts';

export const resolvers: Resolvers = {
  Query,
  Mutation,
  Customer,
  Contact,
  Contract,
  CustomerActivity,
  Opportunity,
  Account,
  ServiceSubscription,
};
