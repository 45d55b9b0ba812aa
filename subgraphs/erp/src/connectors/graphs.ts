import type { AssetGraph, AssetParts, ErpConnector, OrderGraph, OrderParts, OrderRecord, OrderLineRecord } from './types.ts';

type Reads = Pick<
  ErpConnector,
  | 'ordersByNumbers'
  | 'orderLinesByOrderNumbers'
  | 'productsBySkus'
  | 'shipmentsByOrderNumbers'
  | 'invoicesByOrderNumbers'
  | 'assetsBySerialNumbers'
>;

const skusOf = (lines: readonly { sku: string | null }[]) => [...new Set(lines.flatMap((line) => (line.sku ? [line.sku] : [])))];

/**
 * An order graph from the port's own reads: the order, its lines, shipments and invoices need
 * only the order numbers, so they are read together; the products follow the lines (their SKUs
 * come from them). `ordersWithLines`, when the ERP returns an order and its lines in one read,
 * stands for the first two.
 */
export async function composeOrderGraph(
  port: Reads,
  numbers: readonly string[],
  parts: OrderParts,
  ordersWithLines?: (numbers: readonly string[]) => Promise<{ orders: OrderRecord[]; lines: OrderLineRecord[] }>,
): Promise<OrderGraph> {
  const wantLines = parts.lines || parts.products;
  const head = async () => {
    if (!wantLines) return { orders: await port.ordersByNumbers(numbers), lines: [] };
    if (ordersWithLines) return ordersWithLines(numbers);
    const [orders, lines] = await Promise.all([port.ordersByNumbers(numbers), port.orderLinesByOrderNumbers(numbers)]);
    return { orders, lines };
  };
  const withProducts = async () => {
    const found = await head();
    const skus = parts.products ? skusOf(found.lines) : [];
    return { ...found, products: skus.length ? await port.productsBySkus(skus) : [] };
  };
  const [{ orders, lines, products }, shipments, invoices] = await Promise.all([
    withProducts(),
    parts.shipments ? port.shipmentsByOrderNumbers(numbers) : [],
    parts.invoices ? port.invoicesByOrderNumbers(numbers) : [],
  ]);
  return { orders, lines: parts.lines || parts.products ? lines : [], products, shipments, invoices };
}

/** Assets and, when asked for, their products (which follow the assets: their SKUs come from them). */
export async function composeAssetGraph(port: Reads, serialNumbers: readonly string[], parts: AssetParts): Promise<AssetGraph> {
  const assets = await port.assetsBySerialNumbers(serialNumbers);
  const skus = parts.products ? skusOf(assets) : [];
  return { assets, products: skus.length ? await port.productsBySkus(skus) : [] };
}
