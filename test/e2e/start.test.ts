import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureDevKeys } from '../../platform/keys.ts';
import { openDatabase } from '../../platform/sqlite.ts';
import { signDevToken } from '../../platform/dev-token.ts';
import { freePort, npmStart } from '../helpers/npm-start.ts';
import { operation, postGraphQL } from '../helpers/stack.ts';

/**
 * `npm start` as a user runs it: on an empty data folder it seeds, starts the four services as
 * separate processes, prints a first query, and serves CaseContext across all three systems.
 */
describe('npm start', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'concord-start-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('seeds, starts every service on the ports it is given and serves CaseContext from all three systems', async () => {
    // Only the ports are set: the gateway must find the subgraphs there without SUBGRAPH_*_URL.
    const { child, ports, exited, output } = await npmStart(dataDir);
    try {
      expect(output).toContain('Concord is running');
      expect(output).toContain(`http://localhost:${ports.GATEWAY_PORT}/graphql`);
      const caseId = /"variables":\{"id":"(\d+)"\}/.exec(output)?.[1];
      expect(caseId, output).toBeDefined();

      expect(output).toContain('npm run -s token -- --role support_agent');
      // The operations console: printed, its page served, its figures behind a token.
      expect(output).toContain(`Operations console: http://localhost:${ports.GATEWAY_PORT}/console`);
      expect(output).toContain('dev sign-in');
      const page = await fetch(`http://127.0.0.1:${ports.GATEWAY_PORT}/console`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await page.text()).toContain('Concord operations console');
      expect((await fetch(`http://127.0.0.1:${ports.GATEWAY_PORT}/console/api/overview`)).status).toBe(401);
      const keys = await ensureDevKeys(dataDir);
      const token = await signDevToken(keys.issuer.privateKey, { roles: ['support_agent'], subject: 'test', ttlSeconds: 60 });
      const { body } = await postGraphQL<{ case: any }>(
        `http://127.0.0.1:${ports.GATEWAY_PORT}/graphql`,
        operation('agent-console', 'CaseContext'),
        { id: caseId },
        { authorization: `Bearer ${token}` },
      );
      expect(body.errors).toBeUndefined();
      expect(body.data!.case.id).toBe(caseId);
      expect(body.data!.case.subject).toEqual(expect.any(String)); // support desk
      expect(body.data!.case.customer.name).toEqual(expect.any(String)); // CRM
      // ERP: what the seeded ERP database holds for that customer.
      const erp = openDatabase(join(dataDir, 'erp.sqlite'), { readonly: true });
      const billing = erp.prepare('SELECT balanceDue FROM customers WHERE number = ?').get(body.data!.case.customer.id) as {
        balanceDue: number;
      };
      erp.close();
      expect(body.data!.case.customer.openBalance.amount).toBe(billing.balanceDue.toFixed(2));
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  }, 120_000);

  it('takes its settings from concord.yaml, its sections and .env, and wires the services by them', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'concord-settings-'));
    try {
      const { child, ports, exited, output } = await npmStart(
        dataDir,
        { CONCORD_CONFIG: join(folder, 'concord.yaml'), CONCORD_ENV_FILE: join(folder, '.env') },
        (ports) => {
          // The gateway's port at the top level, two subgraphs' in their sections, one in .env.
          writeFileSync(
            join(folder, 'concord.yaml'),
            `GATEWAY_PORT: ${ports.GATEWAY_PORT}\ncrm:\n  CRM_PORT: ${ports.CRM_PORT}\nerp:\n  ERP_PORT: ${ports.ERP_PORT}\n`,
          );
          writeFileSync(join(folder, '.env'), `SUPPORT_PORT=${ports.SUPPORT_PORT}\nPROCESSES_PORT=${ports.PROCESSES_PORT}\n`);
        },
      );
      try {
        expect(output).toContain('Concord is running');
        for (const port of Object.values(ports)) expect(output).toContain(`http://localhost:${port}/graphql`);
        const caseId = /"variables":\{"id":"(\d+)"\}/.exec(output)?.[1];
        const keys = await ensureDevKeys(dataDir);
        const token = await signDevToken(keys.issuer.privateKey, { roles: ['support_agent'], subject: 'test', ttlSeconds: 60 });
        const { body } = await postGraphQL<{ case: any }>(
          `http://127.0.0.1:${ports.GATEWAY_PORT}/graphql`,
          operation('agent-console', 'CaseContext'),
          { id: caseId },
          { authorization: `Bearer ${token}` },
        );
        expect(body.errors).toBeUndefined();
        expect(body.data!.case.customer.openBalance).not.toBeNull(); // the erp, at the port its section gave
      } finally {
        child.kill('SIGINT');
      }
      expect(await exited).toBe(0);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  }, 120_000);

  it('stops with the file and the variable named when concord.yaml holds a mistake', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'concord-settings-'));
    try {
      writeFileSync(join(folder, 'concord.yaml'), 'erp:\n  ERP_PROT: 4102\n');
      const { exited, output } = await npmStart(dataDir, { CONCORD_CONFIG: join(folder, 'concord.yaml') });
      expect(await exited).toBe(78);
      expect(output).toContain(`Invalid configuration in ${join(folder, 'concord.yaml')}`);
      expect(output).toContain('erp.ERP_PROT: the erp reads no such variable');
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  }, 60_000);

  it('says what does not answer, and stops, instead of announcing a broken graph', async () => {
    const nobody = await freePort();
    const { exited, output } = await npmStart(dataDir, { SUBGRAPH_ERP_URL: `http://127.0.0.1:${nobody}/graphql` });
    expect(await exited).toBe(1);
    expect(output).not.toContain('Concord is running');
    expect(output).toMatch(/the graph does not answer as it should: .*erp/);
  }, 120_000);
});
