import type { Resolvers } from '../__generated__/resolvers-types.ts';
import { Asset, Warranty } from './Asset.ts';
import { BillingSchedule } from './BillingSchedule.ts';
import { BillingProfile, Customer } from './Customer.ts';
import { Decimal } from './Decimal.ts';
import { Invoice } from './Invoice.ts';
import { Order, OrderLine } from './Order.ts';
import { Product } from './Product.ts';
import { Query } from './Query.ts';
import { Case, Mutation, ReturnAuthorization, ReturnAuthorizationLine } from './Returns.ts';
import { Shipment, ShipmentLine } from './Shipment.ts';

export const resolvers: Resolvers = {
  Query,
  Mutation,
  ReturnAuthorization,
  ReturnAuthorizationLine,
  Case,
  Customer,
  BillingProfile,
  Product,
  Order,
  OrderLine,
  Shipment,
  ShipmentLine,
  Asset,
  Warranty,
  Invoice,
  Decimal,
  BillingSchedule,
};
