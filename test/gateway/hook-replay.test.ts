import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SeenNotices } from '../../gateway/src/cache/change-hooks.ts';
import { createLogger } from '../../platform/logger.ts';
import { startGatewayOver, SUPERGRAPH_PATH } from '../helpers/stack.ts';

const ZENDESK_SECRET = 'zendesk-signing-secret-for-tests';
const SALESFORCE_SECRET = 'salesforce-relay-secret-for-tests';
const CLIENT_STATE = 'business-central-client-state';

/** Change notices sent to a gateway over HTTP, as each system sends them, and sent again. */
describe('a change notice sent twice', () => {
  let gateway: Awaited<ReturnType<typeof startGatewayOver>>;
  const lines: string[] = [];
  const applied = () => lines.filter((line) => line.includes('change notice applied')).length;
  beforeAll(async () => {
    gateway = await startGatewayOver(
      readFileSync(SUPERGRAPH_PATH, 'utf8'),
      { hooks: { zendeskSecret: ZENDESK_SECRET, salesforceSecret: SALESFORCE_SECRET, businessCentralClientState: CLIENT_STATE } },
      createLogger('gateway', 'info', { write: (line: string) => void lines.push(line) }),
    );
  });
  afterAll(() => gateway?.stop());

  const post = async (path: string, body: string, headers: Record<string, string> = {}) => {
    const response = await fetch(gateway.gateway.url.replace('/graphql', path), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const signed = (secret: string, prefix: string, body: string, timestamp = new Date().toISOString()) => ({
    [prefix]: createHmac('sha256', secret).update(timestamp).update(body).digest('base64'),
    [`${prefix}-timestamp`]: timestamp,
  });

  for (const [system, secret, header] of [
    ['zendesk', ZENDESK_SECRET, 'x-zendesk-webhook-signature'],
    ['salesforce', SALESFORCE_SECRET, 'x-concord-signature'],
  ] as const) {
    it(`applies a signed ${system} notice once: the same one again is acknowledged and ignored`, async () => {
      const body = JSON.stringify(
        system === 'zendesk'
          ? { type: 'zen:event-type:ticket.status_changed', detail: { id: '4711' } }
          : { ChangeEventHeader: { entityName: 'Contact', recordIds: ['003000000000009AAA'] } },
      );
      const headers = signed(secret, header, body);
      const before = applied();
      expect((await post(`/hooks/${system}`, body, headers)).status).toBe(202);
      for (let i = 0; i < 3; i++) {
        const again = await post(`/hooks/${system}`, body, headers);
        expect(again).toEqual({ status: 200, body: { duplicate: true, accepted: 0 } });
      }
      expect(applied() - before).toBe(1);
      // The same change, signed again by the system at another time, is a new notice.
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect((await post(`/hooks/${system}`, body, signed(secret, header, body))).status).toBe(202);
      expect(applied() - before).toBe(2);
    });
  }

  it('refuses a Business Central notification past its subscription expiry, and applies a live one once', async () => {
    const notification = (expirationDateTime: string | undefined, lastModifiedDateTime = new Date().toISOString()) => ({
      subscriptionId: 'concord-items',
      clientState: CLIENT_STATE,
      ...(expirationDateTime ? { expirationDateTime } : {}),
      resource: 'api/v2.0/companies(1)/items(2)',
      changeType: 'updated',
      lastModifiedDateTime,
    });
    const before = applied();
    const expired = await post(
      '/hooks/business-central',
      JSON.stringify({ value: [notification(new Date(Date.now() - 1_000).toISOString())] }),
    );
    expect(expired.status).toBe(401);
    expect(expired.body.error).toMatch(/expirationDateTime/);
    expect((await post('/hooks/business-central', JSON.stringify({ value: [notification(undefined)] }))).status).toBe(401);
    expect(applied()).toBe(before);

    const live = JSON.stringify({ value: [notification(new Date(Date.now() + 3 * 86_400_000).toISOString())] });
    expect((await post('/hooks/business-central', live)).status).toBe(202);
    expect(await post('/hooks/business-central', live)).toEqual({ status: 200, body: { duplicate: true, accepted: 0 } });
    expect(applied() - before).toBe(1);
  });
});

describe('the notices remembered', () => {
  it('are bounded: expired ones make room, and with no room a new notice is refused, not let through', () => {
    let now = 1_000_000;
    const seen = new SeenNotices(3, () => now);
    expect(seen.claimNow(['a'], [now + 100])).toBe('fresh');
    expect(seen.claimNow(['b', 'c'], [now + 200, now + 200])).toBe('fresh');
    expect(seen.claimNow(['a'], [now + 100])).toBe('seen');
    expect(seen.claimNow(['d'], [now + 100])).toBe('full');
    now += 150; // a has expired
    expect(seen.claimNow(['d'], [now + 100])).toBe('fresh');
    expect(seen.size).toBe(3);
    expect(seen.claimNow(['b'], [now + 100])).toBe('seen');
    seen.releaseNow(['b']);
    expect(seen.claimNow(['b'], [now + 100])).toBe('fresh');
  });
});
