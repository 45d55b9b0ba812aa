import { describe, expect, it } from 'vitest';
import { ConnectorError } from '../../platform/errors.ts';
import { createResilience, DEFAULT_POLICY, SystemCallError, type ResiliencePolicy } from '../../platform/resilience.ts';

const policy = (overrides: Partial<ResiliencePolicy> = {}): ResiliencePolicy => ({
  ...DEFAULT_POLICY,
  baseDelayMs: 1,
  maxDelayMs: 4,
  ...overrides,
});
const retryable = (retryAfterMs?: number) => new SystemCallError('503 Service Unavailable', { retryable: true, retryAfterMs, status: 503 });

describe('resilience', () => {
  it('retries an idempotent call that failed retryably, waiting at least Retry-After', async () => {
    const slept: number[] = [];
    const resilience = createResilience('crm', policy(), { sleep: async (ms) => void slept.push(ms), random: () => 0 });
    let calls = 0;
    const result = await resilience.call('customersByIds', { idempotent: true }, async () => {
      calls += 1;
      if (calls < 3) throw retryable(calls === 1 ? 250 : undefined);
      return 'ok';
    });
    expect(result).toBe('ok');
    expect(calls).toBe(3);
    expect(slept[0]).toBe(250);
  });

  it('sends a non-idempotent call once, and never retries what the caller got wrong', async () => {
    const resilience = createResilience('erp', policy(), { sleep: async () => {} });
    let posts = 0;
    await expect(
      resilience.call('createReturnOrder', { idempotent: false }, async () => ((posts += 1), Promise.reject(retryable()))),
    ).rejects.toBeInstanceOf(ConnectorError);
    expect(posts).toBe(1);
    let reads = 0;
    const badRequest = new SystemCallError('400 MALFORMED_QUERY', { retryable: false, status: 400 });
    await expect(resilience.call('query', { idempotent: true }, async () => ((reads += 1), Promise.reject(badRequest)))).rejects.toBe(
      badRequest,
    );
    expect(reads).toBe(1);
  });

  it('times a call out at its deadline', async () => {
    const resilience = createResilience('support', policy({ timeoutMs: 30, retries: 0 }));
    const started = Date.now();
    await expect(resilience.call('searchCases', { idempotent: true }, () => new Promise(() => {}))).rejects.toThrow(
      /timed out after 30 ms/,
    );
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('opens the circuit after repeated failures, fails fast while open, and closes after a good probe', async () => {
    let clock = 0;
    const resilience = createResilience('crm', policy({ retries: 0, breakerThreshold: 3, breakerOpenMs: 1_000 }), { now: () => clock });
    let calls = 0;
    const failing = async () => ((calls += 1), Promise.reject(retryable()));
    for (let i = 0; i < 3; i += 1) await expect(resilience.call('q', { idempotent: true }, failing)).rejects.toBeInstanceOf(ConnectorError);
    expect(resilience.state()).toBe('open');
    await expect(resilience.call('q', { idempotent: true }, failing)).rejects.toThrow(/circuit is open/);
    expect(calls).toBe(3);
    clock = 1_001;
    expect(resilience.state()).toBe('half-open');
    expect(await resilience.call('q', { idempotent: true }, async () => 'back')).toBe('back');
    expect(resilience.state()).toBe('closed');
  });

  it('keeps concurrent calls within the bulkhead', async () => {
    const resilience = createResilience('erp', policy({ maxConcurrent: 2 }));
    let inFlight = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 8 }, () =>
        resilience.call('q', { idempotent: true }, async () => {
          inFlight += 1;
          peak = Math.max(peak, inFlight);
          await new Promise((resolve) => setTimeout(resolve, 5));
          inFlight -= 1;
        }),
      ),
    );
    expect(peak).toBe(2);
  });
});

describe('resilience, answers that are not outages', () => {
  it('closes a half-open circuit when the probe gets an answer, even a 4xx', async () => {
    let clock = 0;
    const resilience = createResilience('erp', policy({ retries: 0, breakerThreshold: 1, breakerOpenMs: 100 }), { now: () => clock });
    await expect(resilience.call('q', { idempotent: true }, async () => Promise.reject(retryable()))).rejects.toBeInstanceOf(
      ConnectorError,
    );
    clock = 101;
    const notFound = new SystemCallError('404 BadRequest_NotFound', { retryable: false, status: 404 });
    await expect(resilience.call('q', { idempotent: true }, async () => Promise.reject(notFound))).rejects.toBe(notFound);
    expect(resilience.state()).toBe('closed');
    expect(await resilience.call('q', { idempotent: true }, async () => 'ok')).toBe('ok');
  });

  it('reports a refused credential as the system being unavailable, and counts it', async () => {
    const resilience = createResilience('crm', policy({ breakerThreshold: 2 }));
    const refused = new SystemCallError('401 INVALID_SESSION_ID', { retryable: false, status: 401 });
    for (let i = 0; i < 2; i += 1) {
      await expect(resilience.call('q', { idempotent: true }, async () => Promise.reject(refused))).rejects.toMatchObject({
        system: 'crm',
      });
    }
    expect(resilience.state()).toBe('open');
  });

  it('does not wait out a Retry-After of more than 30 s', async () => {
    const slept: number[] = [];
    const resilience = createResilience('support', policy(), { sleep: async (ms) => void slept.push(ms) });
    await expect(resilience.call('q', { idempotent: true }, async () => Promise.reject(retryable(3_600_000)))).rejects.toThrow(
      /asks to wait 3600 s/,
    );
    expect(slept).toEqual([]);
  });
});

describe('paging guard', () => {
  it('stops a system that keeps saying "more" with the same cursor, or with no end', async () => {
    const { pagingGuard, MAX_PAGES } = await import('../../platform/paging.ts');
    const repeating = pagingGuard('erp', 'ordersByNumbers');
    repeating.next('page-2');
    expect(() => repeating.next('page-2')).toThrow(/repeats an earlier one/);
    const endless = pagingGuard('crm', 'query');
    expect(() => {
      for (let page = 2; page <= MAX_PAGES + 1; page += 1) endless.next(`locator-${page}`);
    }).toThrow(/more than 1000 pages/);
  });
});

describe('bulkhead queue', () => {
  it('refuses calls beyond what may wait for a slot, instead of queueing them without end', async () => {
    const resilience = createResilience('erp', policy({ maxConcurrent: 1 }));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const calls = Array.from({ length: 6 }, () =>
      resilience
        .call('q', { idempotent: true }, () => gate)
        .then(
          () => 'ok',
          (error: Error) => error,
        ),
    );
    release();
    const results = await Promise.all(calls);
    expect(results.filter((result) => result === 'ok')).toHaveLength(5);
    expect(results.filter((result) => result instanceof ConnectorError)).toHaveLength(1);
  });
});
