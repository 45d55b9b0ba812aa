import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { ConnectorError } from '../../platform/errors.ts';
import { RETURN_STEPS, RETURN_WORKFLOW } from '../../processes/src/workflows/returns.ts';
import type { CrmConnector } from '../../subgraphs/crm/src/connectors/types.ts';
import { blockNonLocal, launchBrowser, screenshotPath } from '../helpers/browser.ts';
import { operation, startStack, type Stack, returnableCase } from '../helpers/stack.ts';

const CREATE = operation('agent-console', 'CreateReturnAuthorization');

/** Makes the CRM's activity writes fail, as if the CRM were down. */
const faults = { crmDown: false };

/**
 * The operations console in headless chromium, as an operator uses it: dev sign-in, the figures,
 * a return parked while the CRM is down shown in plain words, and a retry once it is back.
 */
describe('operations console in a browser', () => {
  let stack: Stack;
  let browser: BrowserContext;
  let page: Page;
  let blocked: string[];

  beforeAll(async () => {
    stack = await startStack({
      // Retries within tens of ms, parked after 4 attempts.
      processesEnv: { WORKFLOW_BASE_DELAY_MS: '50', WORKFLOW_MAX_DELAY_MS: '200', WORKFLOW_MAX_ATTEMPTS: '4', RMA_AGENT_LIMIT: '20000' },
      crm: {
        wrapConnector: (crm: CrmConnector): CrmConnector => ({
          ...crm,
          logActivity: (activity) =>
            faults.crmDown ? Promise.reject(new ConnectorError('crm', 'crm: connection refused')) : crm.logActivity(activity),
        }),
      },
    });
    browser = await launchBrowser({ viewport: { width: 1280, height: 1100 } });
    blocked = await blockNonLocal(browser);
    page = await browser.newPage();
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  /** An open case about a unit under warranty. */
  const candidate = () => returnableCase(stack.dbs);

  it('shows the figures and a parked return in plain words, and retries it once the CRM is back', async () => {
    faults.crmDown = true;
    const c = candidate();
    const { body } = await stack.queryAs<{ createReturnAuthorization: any }>('support_agent', CREATE, {
      input: {
        caseId: c.caseId,
        resolution: 'REPLACE',
        idempotencyKey: 'console-e2e',
        lines: [{ serialNumber: c.serialNumber, quantity: 1, reason: 'DEFECTIVE' }],
      },
    });
    expect(body.errors).toBeUndefined();
    expect(body.data!.createReturnAuthorization.errors).toEqual([]);
    const engine = stack.processes.engine;
    const found = (await engine.list({ type: RETURN_WORKFLOW, limit: 100 }))[0]!;
    const parked = await engine.waitFor(found.id, (instance) => instance.state === 'failed', 15_000);
    expect(parked?.state).toBe('failed');
    expect(parked?.currentStep).toBe(RETURN_STEPS.activity);

    const origin = new URL(stack.gateway.url).origin;
    await page.goto(`${origin}/console`);
    await page.getByTestId('dev-role').selectOption('integration_operator');
    await page.getByTestId('dev-signin-button').click();
    await expect.poll(() => page.getByTestId('who').textContent()).toContain('integration_operator');

    // The figures: every system up, and the CRM's fetches counted.
    const crm = page.getByTestId('system-crm');
    await expect.poll(() => crm.textContent(), { timeout: 15_000 }).toContain('up');
    for (const name of ['erp', 'support', 'processes'])
      await expect.poll(() => page.getByTestId(`system-${name}`).textContent(), { timeout: 15_000 }).toContain('up');
    await expect.poll(() => page.locator('.uplot').count(), { timeout: 15_000 }).toBe(3);

    // The exception queue: the return, its reason in plain words naming the CRM.
    const item = page.locator(`[data-testid="parked"][data-id="${found.id}"]`);
    await expect.poll(() => item.count(), { timeout: 15_000 }).toBe(1);
    const reason = await item.getByTestId('plain-reason').textContent();
    expect(reason).toMatch(/^The CRM did not answer \(4 attempts\)/);
    await expect.poll(() => page.getByTestId('counts').textContent()).toContain(RETURN_WORKFLOW);
    await item.getByRole('button', { name: 'steps' }).click();
    expect(await item.getByTestId('timeline-step').count()).toBe(3);
    await page.screenshot({ path: screenshotPath('console-parked.png'), fullPage: true });

    // The CRM is back: the operator retries, saying why.
    faults.crmDown = false;
    await item.getByTestId('action-RETRY').click();
    await item.getByTestId('confirm').click();
    // A reason is asked for first.
    expect(await item.getByTestId('action-message').textContent()).toMatch(/Say why/);
    await item.getByTestId('reason').fill('CRM is back after the outage');
    await item.getByTestId('confirm').click();

    const detail = page.getByTestId('workflow-detail');
    await expect.poll(() => detail.getByTestId('detail-state').textContent(), { timeout: 20_000 }).toBe('DONE');
    await expect.poll(() => page.locator(`[data-testid="parked"][data-id="${found.id}"]`).count(), { timeout: 15_000 }).toBe(0);
    const history = (await engine.get(found.id))!.history;
    expect(history.find((entry) => entry.event === 'operator: retry')?.detail).toBe(
      'retry crm-activity (by console-integration_operator@concord.example): CRM is back after the outage',
    );
    // The list and the counts follow at their next refresh.
    await expect
      .poll(() => page.locator(`[data-testid="workflow-row"][data-id="${found.id}"]`).textContent(), { timeout: 15_000 })
      .toContain('DONE');
    await detail.scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshotPath('console-done.png'), fullPage: true });

    expect(blocked).toEqual([]);
  }, 120_000);

  it('is read-only for a support lead: the queue without actions', async () => {
    const lead = await browser.newPage();
    const origin = new URL(stack.gateway.url).origin;
    await lead.goto(`${origin}/console`);
    // Sign in by pasting a token, as with a real identity provider.
    await lead.getByTestId('token-input').fill(await stack.bearer('support_lead'));
    await lead.getByTestId('token-button').click();
    await expect.poll(() => lead.getByTestId('queue').textContent()).toContain('Read-only');
    expect(await lead.getByTestId('action-RETRY').count()).toBe(0);
    // Finance sees the figures only: the graph shows it no workflows.
    await lead.getByRole('button', { name: 'Sign out' }).click();
    await lead.getByTestId('token-input').fill(await stack.bearer('finance'));
    await lead.getByTestId('token-button').click();
    await expect.poll(() => lead.getByTestId('no-workflows').count()).toBe(1);
    await expect.poll(() => lead.getByTestId('system-crm').textContent()).toContain('up');
    await lead.close();
    expect(blocked).toEqual([]);
  });
});
