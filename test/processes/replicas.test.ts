import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.ts';
import { loadSubgraphConfig } from '../../platform/subgraph-config.ts';
import { postgresExecutor } from '../../platform/workflow/sql.ts';
import { loadProcessesConfig } from '../../processes/src/config.ts';
import { startProcesses, type ProcessesService } from '../../processes/src/index.ts';
import { RETURN_STEPS, RETURN_WORKFLOW } from '../../processes/src/workflows/returns.ts';
import { newSalesforceId } from '../../subgraphs/crm/src/connectors/embedded/ids.ts';
import { startPostgres, type PostgresServer } from '../helpers/postgres.ts';
import { clock, operation, startStack, tokenFor, type Stack, PRIVATE_EVENTS } from '../helpers/stack.ts';

/**
 * The seed workflows with their store on PostgreSQL and two replicas of the process service: the
 * gateway sends the requests to one, either runs the steps. A request waits for a step another
 * replica ran; duplicates on one replica and steps on the other still make one write per system.
 */
describe('the seed workflows on PostgreSQL, two replicas', () => {
  let postgres: PostgresServer;
  let stack: Stack;
  let second: ProcessesService;
  const firstLines: string[] = [];
  const secondLines: string[] = [];

  beforeAll(async () => {
    postgres = await startPostgres();
    const env = { WORKFLOW_POLL_MS: '50', WORKFLOW_LEASE_MS: '2000', WORKFLOW_BASE_DELAY_MS: '50', WORKFLOW_MAX_DELAY_MS: '200' };
    stack = await startStack({
      processesEnv: { ...env, PROCESS_REPLICA: 'r1' },
      processes: {
        sql: postgresExecutor({ url: postgres.url, max: 5, applicationName: 'r1' }),
        logger: createLogger('processes', 'info', { write: (line: string) => void firstLines.push(line) }),
      },
    });
    second = await startProcesses(
      {
        ...loadProcessesConfig({ ...env, PROCESS_REPLICA: 'r2' }),
        ...loadSubgraphConfig({ prefix: 'PROCESSES', defaultPort: 0, databaseFile: ':memory:' }, {}),
        host: '127.0.0.1',
        logLevel: 'silent',
        events: PRIVATE_EVENTS,
      },
      {
        clock,
        internalPublicKey: stack.keys.internal.publicKey,
        sql: postgresExecutor({ url: postgres.url, max: 5, applicationName: 'r2' }),
        logger: createLogger('processes', 'info', { write: (line: string) => void secondLines.push(line) }),
        gatewayUrl: stack.gateway.url.replace('localhost', '127.0.0.1'),
        serviceToken: () => tokenFor(stack.keys, { subject: 'concord-processes', roles: ['integration'], customerId: null }),
      },
    );
  }, 60_000);
  afterAll(async () => {
    await second?.stop();
    await stack?.stop();
    await postgres?.stop();
  });

  it('authorizes one return for ten keys racing for one unit, the steps spread over both replicas', async () => {
    const row = stack.dbs.support
      .prepare(
        `SELECT t.id AS caseId, fs.value AS serialNumber FROM tickets t
         JOIN ticket_custom_fields fs ON fs.ticket_id = t.id AND fs.field_id = 360000000102
         WHERE t.status IN ('new', 'open', 'pending', 'hold') ORDER BY t.id LIMIT 1`,
      )
      .get() as { caseId: number; serialNumber: string };
    const create = (key: string) =>
      stack.queryAs('support_lead', operation('agent-console', 'CreateReturnAuthorization'), {
        input: {
          caseId: String(row.caseId),
          resolution: 'REFUND',
          idempotencyKey: key,
          lines: [{ serialNumber: row.serialNumber, quantity: 1, reason: 'DEFECTIVE' }],
        },
      });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => create(`pg-race-${i}`)));
    const bodies = results.map((result) => result.body as { data: any; errors?: any[] });
    expect(bodies.flatMap((body) => body.errors ?? [])).toEqual([]);
    const created = bodies.filter((body) => body.data.createReturnAuthorization.returnAuthorization);
    expect(created).toHaveLength(1);
    const rma = created[0]!.data.createReturnAuthorization.returnAuthorization.number as string;
    for (const body of bodies.filter((b) => !b.data.createReturnAuthorization.returnAuthorization))
      expect(body.data.createReturnAuthorization.errors.map((e: any) => e.code)).toEqual(['QUANTITY_EXCEEDS_SHIPPED']);
    // Every workflow settles; the RMA's case note and CRM activity are written once.
    const engine = stack.processes.engine;
    const deadline = Date.now() + 15_000;
    let mine = await engine.list({ type: RETURN_WORKFLOW, limit: 100 });
    while (mine.some((i) => i.state === 'running' || i.state === 'waiting') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      mine = await engine.list({ type: RETURN_WORKFLOW, limit: 100 });
    }
    expect(mine.filter((i) => i.idempotencyKey.includes('pg-race-')).every((i) => i.state === 'done')).toBe(true);
    expect(stack.dbs.erp.prepare('SELECT COUNT(*) AS n FROM salesReturnOrders WHERE caseNumber = ?').get(String(row.caseId))).toEqual({
      n: 1,
    });
    const notes = stack.dbs.support.prepare('SELECT body FROM ticket_comments WHERE ticket_id = ? AND public = 0').all(row.caseId) as {
      body: string;
    }[];
    expect(notes.filter((note) => note.body.includes(rma))).toHaveLength(1);
    expect(stack.dbs.crm.prepare('SELECT COUNT(*) AS n FROM Task WHERE Subject LIKE ?').get(`%${rma}%`)).toEqual({ n: 1 });
    expect(mine.find((i) => (i.results[RETURN_STEPS.order] as { returnNumber?: string } | undefined)?.returnNumber === rma)).toBeDefined();
    // Who ran the steps: each replica logs the steps it did.
    const stepsBy = (lines: string[]) =>
      lines.map((line) => JSON.parse(line)).filter((entry) => entry.event === 'workflow.step_done').length;
    const split = { r1: stepsBy(firstLines), r2: stepsBy(secondLines) };
    console.log(`steps done per replica: ${JSON.stringify(split)}`);
    // Ten ERP steps, and the case note and the activity of the one RMA.
    expect(split.r1 + split.r2).toBe(12);
  }, 60_000);

  it('makes one order for twenty sendings of one quote-to-order request', async () => {
    const customer = stack.dbs.erp
      .prepare(
        `SELECT number FROM customers WHERE blocked = ' ' AND paymentTermsId IS NOT NULL AND currencyCode = 'USD' ORDER BY number DESC LIMIT 1`,
      )
      .get() as { number: string };
    stack.dbs.erp.prepare(`UPDATE customers SET creditLimit = 0 WHERE number = ?`).run(customer.number);
    const account = stack.dbs.crm.prepare('SELECT Id FROM Account WHERE AccountNumber = ?').get(customer.number) as { Id: string };
    const item = stack.dbs.erp.prepare(`SELECT number, unitPrice FROM items WHERE type = 'Inventory' ORDER BY number LIMIT 1`).get() as {
      number: string;
      unitPrice: number;
    };
    stack.dbs.erp.prepare('UPDATE items SET inventory = 100 WHERE number = ?').run(item.number);
    const id = newSalesforceId('006');
    stack.dbs.crm
      .prepare(
        `INSERT INTO Opportunity (Id, AccountId, Name, StageName, IsClosed, IsWon, CloseDate, Amount, CurrencyIsoCode, LastModifiedDate)
         VALUES (?, ?, 'Replicated deal', 'Closed Won', 1, 1, '2026-11-01', ?, 'USD', '2026-11-01T09:00:00Z')`,
      )
      .run(id, account.Id, item.unitPrice);
    stack.dbs.crm
      .prepare(
        `INSERT INTO OpportunityLineItem (Id, OpportunityId, ProductCode, Quantity, UnitPrice, TotalPrice, SortOrder) VALUES (?, ?, ?, 1, ?, ?, 1)`,
      )
      .run(newSalesforceId('00k'), id, item.number, item.unitPrice, item.unitPrice);
    const convert = () =>
      stack.queryAs(
        'sales_rep',
        `mutation { convertOpportunityToOrder(input: { opportunityId: "${id}", idempotencyKey: "pg-dup" }) { order { number } errors { code } } }`,
      );
    const results = await Promise.all(Array.from({ length: 20 }, convert));
    const numbers = new Set(results.map((result) => (result.body.data as any)?.convertOpportunityToOrder?.order?.number));
    expect(results.every((result) => result.body.errors === undefined)).toBe(true);
    expect(numbers.size).toBe(1);
    expect(
      stack.dbs.erp.prepare(`SELECT COUNT(*) AS n FROM salesOrders WHERE customerNumber = ? AND number LIKE 'SO-2%'`).get(customer.number),
    ).toEqual({ n: 1 });
  }, 60_000);
});
