import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../platform/sqlite.ts';
import { EMBEDDED_FIELD_IDS } from '../../subgraphs/support/src/connectors/embedded/tables.ts';
import { runSeedCli, type SeedCliIo } from '../../tools/seed.ts';
import { defaultSeedOptions, seedDataDirectory, seedDatabases, type SeedDatabases, type SeedOptions } from '../../tools/seed/index.ts';

const AS_OF = '2025-06-30';
const SMALL: SeedOptions = { customers: 50, orders: 500, cases: 1000, seed: 7, asOf: AS_OF };

function seedInMemory(options: SeedOptions): SeedDatabases {
  const dbs = { crm: openDatabase(':memory:'), erp: openDatabase(':memory:'), support: openDatabase(':memory:') };
  seedDatabases(dbs, options);
  return dbs;
}

function dumpHash(db: Database): string {
  const hash = createHash('sha256');
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[];
  for (const table of tables) {
    hash.update(`\u0000${table}\u0000`);
    for (const row of db.prepare(`SELECT * FROM "${table}" ORDER BY rowid`).raw().iterate()) hash.update(JSON.stringify(row));
  }
  return hash.digest('hex');
}

function rows<T>(db: Database, sql: string, ...params: unknown[]): T[] {
  return db.prepare(sql).all(...params) as T[];
}

function scalar(db: Database, sql: string, ...params: unknown[]): number {
  return db
    .prepare(sql)
    .pluck()
    .get(...params) as number;
}

/** Salesforce's case-insensitivity suffix, computed independently of the generator. */
function checksum(id15: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';
  let out = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) if (/[A-Z]/.test(id15.charAt(chunk * 5 + i))) bits += 2 ** i;
    out += alphabet.charAt(bits);
  }
  return out;
}

const world = seedInMemory(SMALL);

describe('seed: determinism', () => {
  it('gives identical tables for identical options and different data for another seed', () => {
    const again = seedInMemory(SMALL);
    const other = seedInMemory({ ...SMALL, seed: 8 });
    for (const system of ['crm', 'erp', 'support'] as const) {
      expect(dumpHash(again[system]), system).toBe(dumpHash(world[system]));
      expect(dumpHash(other[system]), system).not.toBe(dumpHash(world[system]));
    }
  });

  it('replaces earlier rows when run again on the same databases', () => {
    const dbs = seedInMemory({ ...SMALL, seed: 99 });
    seedDatabases(dbs, SMALL);
    expect(dumpHash(dbs.erp)).toBe(dumpHash(world.erp));
    expect(scalar(dbs.support, 'SELECT count(*) FROM tickets')).toBe(SMALL.cases);
  });
});

describe('seed: one world across the three systems', () => {
  const { crm, erp, support } = world;

  it('gives every customer the same number in the CRM, the ERP and the desk', () => {
    // Prospects pending onboarding have no customer number yet; every customer's account has one.
    const accounts = rows<{ AccountNumber: string }>(crm, 'SELECT AccountNumber FROM Account WHERE AccountNumber IS NOT NULL')
      .map((r) => r.AccountNumber)
      .sort();
    const prospects = rows<{ status: string }>(crm, 'SELECT Onboarding_Status__c AS status FROM Account WHERE AccountNumber IS NULL');
    expect(prospects.length).toBe(Math.ceil(SMALL.customers / 20));
    expect(prospects.every((p) => p.status === 'Pending')).toBe(true);
    const customers = rows<{ number: string }>(erp, 'SELECT number FROM customers')
      .map((r) => r.number)
      .sort();
    const orgs = rows<{ external_id: string }>(support, 'SELECT external_id FROM organizations')
      .map((r) => r.external_id)
      .sort();
    expect(accounts).toHaveLength(SMALL.customers);
    expect(accounts[0]).toBe('C10001');
    expect(accounts.every((n) => /^C\d{5}$/.test(n))).toBe(true);
    expect(customers).toEqual(accounts);
    expect(orgs).toEqual(accounts);
    const byNumber = new Map(
      rows<{ AccountNumber: string; Name: string }>(crm, 'SELECT AccountNumber, Name FROM Account WHERE AccountNumber IS NOT NULL').map(
        (r) => [r.AccountNumber, r.Name],
      ),
    );
    expect(new Set(byNumber.values()).size).toBe(SMALL.customers);
    for (const c of rows<{ number: string; displayName: string }>(erp, 'SELECT number, displayName FROM customers')) {
      expect(c.displayName).toBe(byNumber.get(c.number));
    }
  });

  it("ties every case to its customer, a contact of that customer, and that customer's orders and units", () => {
    const contactAccount = new Map(
      rows<{ Id: string; AccountNumber: string }>(
        crm,
        'SELECT c.Id, a.AccountNumber FROM Contact c JOIN Account a ON a.Id = c.AccountId',
      ).map((r) => [r.Id, r.AccountNumber]),
    );
    const orderCustomer = new Map(
      rows<{ number: string; customerNumber: string; orderDate: string }>(
        erp,
        'SELECT number, customerNumber, orderDate FROM salesOrders',
      ).map((r) => [r.number, r]),
    );
    const serialOrder = new Map(
      rows<{ serialNumber: string; orderNumber: string }>(erp, 'SELECT serialNumber, orderNumber FROM serialNumbers').map((r) => [
        r.serialNumber,
        r.orderNumber,
      ]),
    );
    const tickets = rows<{
      id: number;
      created_at: string;
      customer: string;
      requester: string;
      role: string;
      order_number: string | null;
      serial: string | null;
    }>(
      support,
      `SELECT t.id, t.created_at, o.external_id AS customer, u.external_id AS requester, u.role,
              (SELECT value FROM ticket_custom_fields f WHERE f.ticket_id = t.id AND f.field_id = ?) AS order_number,
              (SELECT value FROM ticket_custom_fields f WHERE f.ticket_id = t.id AND f.field_id = ?) AS serial
         FROM tickets t JOIN organizations o ON o.id = t.organization_id JOIN users u ON u.id = t.requester_id
        ORDER BY t.id`,
      EMBEDDED_FIELD_IDS.orderNumber,
      EMBEDDED_FIELD_IDS.serialNumber,
    );
    expect(tickets).toHaveLength(SMALL.cases);
    let withOrder = 0;
    let withSerial = 0;
    let previous = '';
    for (const t of tickets) {
      expect(t.created_at >= previous).toBe(true);
      previous = t.created_at;
      expect(t.customer).toMatch(/^C\d{5}$/);
      expect(t.role).toBe('end-user');
      expect(contactAccount.get(t.requester)).toBe(t.customer);
      if (t.order_number !== null) {
        withOrder++;
        const order = orderCustomer.get(t.order_number);
        expect(order?.customerNumber).toBe(t.customer);
        expect(order && order.orderDate < t.created_at.slice(0, 10)).toBe(true);
      }
      if (t.serial !== null) {
        withSerial++;
        expect(t.order_number).not.toBeNull();
        expect(serialOrder.get(t.serial)).toBe(t.order_number);
      }
    }
    expect(withOrder / tickets.length).toBeGreaterThan(0.55);
    expect(withSerial / tickets.length).toBeGreaterThan(0.25);
  });

  it('makes one desk end-user per CRM contact, with the same name and e-mail', () => {
    const contacts = rows<{ Id: string; name: string; Email: string }>(
      crm,
      "SELECT Id, FirstName || ' ' || LastName AS name, Email FROM Contact ORDER BY Id",
    );
    const users = rows<{ external_id: string; name: string; email: string }>(
      support,
      "SELECT external_id, name, email FROM users WHERE role = 'end-user' ORDER BY external_id",
    );
    expect(users.map((u) => [u.external_id, u.name, u.email])).toEqual(contacts.map((c) => [c.Id, c.name, c.Email]));
    expect(
      scalar(support, "SELECT count(*) FROM users WHERE role = 'agent' AND organization_id IS NULL AND external_id IS NULL"),
    ).toBeGreaterThanOrEqual(20);
  });

  it("keeps each customer's balance due equal to what its open invoices still owe", () => {
    const open = new Map(
      rows<{ customerNumber: string; owed: number }>(
        erp,
        "SELECT customerNumber, sum(remainingAmount) AS owed FROM salesInvoices WHERE status = 'Open' GROUP BY 1",
      ).map((r) => [r.customerNumber, r.owed]),
    );
    for (const c of rows<{ number: string; balanceDue: number }>(erp, 'SELECT number, balanceDue FROM customers')) {
      expect(Math.round(c.balanceDue * 100), c.number).toBe(Math.round((open.get(c.number) ?? 0) * 100));
    }
  });

  it('keeps orders, shipments, serials and invoices consistent', () => {
    expect(scalar(erp, 'SELECT count(*) FROM salesOrders')).toBe(SMALL.orders);
    // Order totals match their lines, and fully shipped orders shipped every unit.
    expect(
      scalar(
        erp,
        `SELECT count(*) FROM salesOrders o WHERE abs(o.totalAmountExcludingTax - (SELECT sum(amountExcludingTax) FROM salesOrderLines l WHERE l.documentId = o.id)) > 0.001
            OR abs(o.totalAmountIncludingTax - o.totalAmountExcludingTax - o.totalTaxAmount) > 0.001`,
      ),
    ).toBe(0);
    expect(
      scalar(
        erp,
        'SELECT count(*) FROM salesOrders o JOIN salesOrderLines l ON l.documentId = o.id WHERE o.fullyShipped = 1 AND l.shippedQuantity <> l.quantity',
      ),
    ).toBe(0);
    expect(scalar(erp, "SELECT count(*) FROM salesOrders WHERE status <> 'Open' AND orderDate < date(?, '-14 days')", AS_OF)).toBe(0);
    // One invoice per shipment; a fully shipped order's invoices add up to its total.
    expect(scalar(erp, 'SELECT count(*) FROM salesInvoices')).toBe(scalar(erp, 'SELECT count(*) FROM salesShipments'));
    expect(
      scalar(
        erp,
        `SELECT count(*) FROM salesOrders o WHERE o.fullyShipped = 1
            AND abs(o.totalAmountIncludingTax - (SELECT sum(totalAmountIncludingTax) FROM salesInvoices i WHERE i.orderNumber = o.number)) > 0.001`,
      ),
    ).toBe(0);
    // Serialized units: one per unit shipped, unique, warranty from the shipment date.
    expect(
      scalar(
        erp,
        "SELECT count(*) FROM serialNumbers WHERE serialNumber NOT GLOB 'SN[A-Z0-9][A-Z0-9][A-Z0-9][A-Z0-9][A-Z0-9][A-Z0-9][A-Z0-9][A-Z0-9]'",
      ),
    ).toBe(0);
    expect(
      scalar(
        erp,
        'SELECT count(*) FROM serialNumbers s JOIN salesShipments h ON h.number = s.shipmentNumber WHERE s.warrantyStartDate <> h.postingDate OR s.orderNumber <> h.orderNumber',
      ),
    ).toBe(0);
    expect(scalar(erp, 'SELECT count(*) FROM serialNumbers')).toBe(
      scalar(
        erp,
        "SELECT coalesce(sum(l.quantity), 0) FROM salesShipmentLines l JOIN items i ON i.number = l.lineObjectNumber WHERE i.itemTrackingCode = 'SN'",
      ),
    );
    expect(scalar(erp, 'SELECT count(*) FROM salesShipments WHERE deliveredDate IS NOT NULL AND deliveredDate < postingDate')).toBe(0);
    expect(scalar(erp, "SELECT count(*) FROM salesOrders WHERE number NOT GLOB 'SO-[0-9][0-9][0-9][0-9][0-9][0-9]'")).toBe(0);
  });
});

describe('seed: the states a demo needs', () => {
  const { crm, erp, support } = world;

  it('has active and expired warranties', () => {
    expect(scalar(erp, 'SELECT count(*) FROM serialNumbers WHERE warrantyEndDate >= ?', AS_OF)).toBeGreaterThan(0);
    expect(scalar(erp, 'SELECT count(*) FROM serialNumbers WHERE warrantyEndDate < ?', AS_OF)).toBeGreaterThan(0);
  });

  it('has open, paid, overdue and partly paid invoices', () => {
    expect(
      scalar(erp, "SELECT count(*) FROM salesInvoices WHERE status = 'Paid' AND remainingAmount = 0 AND closedDate IS NOT NULL"),
    ).toBeGreaterThan(0);
    expect(scalar(erp, "SELECT count(*) FROM salesInvoices WHERE status = 'Open' AND dueDate >= ?", AS_OF)).toBeGreaterThan(0);
    expect(scalar(erp, "SELECT count(*) FROM salesInvoices WHERE status = 'Open' AND dueDate < ?", AS_OF)).toBeGreaterThan(0);
    expect(
      scalar(
        erp,
        "SELECT count(*) FROM salesInvoices WHERE status = 'Open' AND remainingAmount > 0 AND remainingAmount < totalAmountIncludingTax",
      ),
    ).toBeGreaterThan(0);
    expect(scalar(erp, "SELECT count(*) FROM salesInvoices WHERE status = 'Paid' AND remainingAmount <> 0")).toBe(0);
  });

  it('has public and internal comments, the first one public by the requester', () => {
    expect(scalar(support, 'SELECT count(*) FROM ticket_comments WHERE public = 1')).toBeGreaterThan(0);
    expect(scalar(support, 'SELECT count(*) FROM ticket_comments WHERE public = 0')).toBeGreaterThan(0);
    expect(
      scalar(
        support,
        `SELECT count(*) FROM tickets t JOIN ticket_comments c ON c.id = (SELECT min(id) FROM ticket_comments WHERE ticket_id = t.id)
          WHERE c.public = 0 OR c.author_id <> t.requester_id OR c.created_at <> t.created_at`,
      ),
    ).toBe(0);
    expect(
      scalar(
        support,
        'SELECT count(*) FROM ticket_comments c JOIN tickets t ON t.id = c.ticket_id WHERE c.created_at > t.updated_at OR t.updated_at < t.created_at',
      ),
    ).toBe(0);
  });

  it('has open and closed cases, and both active and missing support contracts', () => {
    expect(scalar(support, "SELECT count(*) FROM tickets WHERE status IN ('new', 'open', 'pending', 'hold')")).toBeGreaterThan(
      SMALL.cases * 0.03,
    );
    expect(scalar(support, "SELECT count(*) FROM tickets WHERE status IN ('solved', 'closed')")).toBeGreaterThan(SMALL.cases / 2);
    const active = scalar(
      crm,
      "SELECT count(DISTINCT AccountId) FROM Contract WHERE Status = 'Activated' AND StartDate <= ? AND EndDate >= ?",
      AS_OF,
      AS_OF,
    );
    expect(active).toBeGreaterThan(SMALL.customers * 0.6);
    expect(active).toBeLessThan(SMALL.customers);
    expect(scalar(crm, "SELECT count(*) FROM Contract WHERE Status = 'Expired'")).toBeGreaterThan(0);
    expect(
      scalar(crm, "SELECT count(*) FROM (SELECT AccountId FROM Contract WHERE Status = 'Activated' GROUP BY 1 HAVING count(*) > 1)"),
    ).toBe(0);
    expect(scalar(support, 'SELECT count(*) FROM sla_policies')).toBe(3);
    expect(scalar(crm, 'SELECT count(*) FROM Task')).toBe(0);
  });

  it('tags each organization with the tier of its active contract', () => {
    const tiers = new Map(
      rows<{ AccountNumber: string; tier: string }>(
        crm,
        "SELECT a.AccountNumber, k.SupportTier__c AS tier FROM Contract k JOIN Account a ON a.Id = k.AccountId WHERE k.Status = 'Activated'",
      ).map((r) => [r.AccountNumber, `tier_${r.tier.toLowerCase()}`]),
    );
    for (const org of rows<{ external_id: string; tags: string }>(support, 'SELECT external_id, tags FROM organizations')) {
      const tags = JSON.parse(org.tags) as string[];
      const expected = tiers.get(org.external_id);
      expect(tags.filter((t) => t.startsWith('tier_'))).toEqual(expected === undefined ? [] : [expected]);
    }
  });
});

describe('seed: Salesforce Ids', () => {
  it('are 18 characters with the right key prefix and case-insensitivity suffix', () => {
    const prefixes: Record<string, string> = { User: '005', Account: '001', Contact: '003', Contract: '800' };
    for (const [table, prefix] of Object.entries(prefixes)) {
      const ids = rows<{ Id: string }>(world.crm, `SELECT Id FROM "${table}"`).map((r) => r.Id);
      expect(ids.length, table).toBeGreaterThan(0);
      for (const id of ids) {
        expect(id).toMatch(/^[0-9A-Za-z]{18}$/);
        expect(id.slice(0, 3)).toBe(prefix);
        expect(id.slice(15)).toBe(checksum(id.slice(0, 15)));
      }
    }
    expect(
      scalar(world.crm, "SELECT count(*) FROM Contract WHERE ContractNumber NOT GLOB '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]'"),
    ).toBe(0);
    expect(scalar(world.crm, 'SELECT min(ContractNumber) FROM Contract')).toBe('00000101');
  });
});

describe('seed: size and files', () => {
  it('seeds a small world quickly', () => {
    const started = performance.now();
    seedInMemory({ ...SMALL, seed: 3 });
    expect(performance.now() - started).toBeLessThan(1500);
  });

  it('defaults to 1,000 customers, 10,000 orders and 20,000 cases as of today', () => {
    expect(defaultSeedOptions('2026-01-02')).toEqual({ customers: 1000, orders: 10_000, cases: 20_000, seed: 42, asOf: '2026-01-02' });
    expect(defaultSeedOptions().asOf).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });

  it('writes the files into place and leaves no temporary files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'concord-seed-'));
    try {
      seedDataDirectory(dir, { ...SMALL, customers: 5, orders: 20, cases: 30 });
      expect(readdirSync(dir).sort()).toEqual(['crm.sqlite', 'erp.sqlite', 'support.sqlite']);
      const erp = openDatabase(join(dir, 'erp.sqlite'), { readonly: true });
      expect(scalar(erp, 'SELECT count(*) FROM salesOrders')).toBe(20);
      erp.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('seed: command line', () => {
  function cli(dir: string) {
    const out: string[] = [];
    const err: string[] = [];
    const io: SeedCliIo = { out: (l) => out.push(l), err: (l) => err.push(l), env: {}, cwd: dir };
    return { io, out, err };
  }

  it('rejects bad flags with exit code 2, naming the flag', async () => {
    const { io, err } = cli(tmpdir());
    expect(await runSeedCli(['--customers', 'many'], io)).toBe(2);
    expect(err.join('\n')).toContain('--customers');
    expect(await runSeedCli(['--as-of', '2025-02-30'], io)).toBe(2);
    expect(err.join('\n')).toContain('--as-of');
    expect(await runSeedCli(['--colour'], io)).toBe(2);
    expect(err.join('\n')).toContain('--colour');
  });

  it('seeds, then leaves existing databases alone unless forced', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'concord-seed-cli-'));
    try {
      const first = cli(dir);
      expect(await runSeedCli(['--customers', '4', '--as-of', AS_OF, '--data-dir', 'demo'], first.io)).toBe(0);
      expect(first.out.join('\n')).toMatch(/40 orders, 80 cases/);
      expect(first.out.filter((l) => /^(crm|erp|support)\s/.test(l))).toHaveLength(3);
      const file = join(dir, 'demo', 'support.sqlite');
      expect(existsSync(file)).toBe(true);
      const written = statSync(file).mtimeMs;

      const second = cli(dir);
      expect(await runSeedCli(['--data-dir', 'demo'], second.io)).toBe(0);
      expect(second.out.join('\n')).toContain('already exist');
      expect(statSync(file).mtimeMs).toBe(written);

      const third = cli(dir);
      expect(await runSeedCli(['--customers', '3', '--cases', '5', '--as-of', AS_OF, '--data-dir', 'demo', '--force'], third.io)).toBe(0);
      const support = openDatabase(file, { readonly: true });
      expect(scalar(support, 'SELECT count(*) FROM tickets')).toBe(5);
      support.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
