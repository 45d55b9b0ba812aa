import type { ProductResolvers } from '../__generated__/resolvers-types.ts';

export const Product: ProductResolvers = {
  __resolveReference: ({ sku }, { loaders }) => loaders.product.load(sku),
  unitPrice: (product) => ({ amount: product.unitPrice, currency: product.currency }),
};
