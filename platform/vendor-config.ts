import { DEFAULT_BUDGET_POLICY } from './api-budget.ts';
import { z } from 'zod';
import { ConfigError, httpUrl, positiveInt, readEnv } from './config.ts';
import { oauthTokenSource, type OAuthGrant } from './oauth.ts';
import { DEFAULT_POLICY, type ResiliencePolicy } from './resilience.ts';

/** The variables of how a vendor system is called (<PREFIX>_TIMEOUT_MS, …), with the adapter's defaults. */
export function resilienceEnvSchema(prefix: string, defaults: Partial<ResiliencePolicy> = {}) {
  const base = { ...DEFAULT_POLICY, ...defaults };
  const vendorOnly = ' Vendor adapters only.';
  return z.object({
    [`${prefix}_TIMEOUT_MS`]: positiveInt(base.timeoutMs).describe(`Deadline of one call to the vendor system, in ms.${vendorOnly}`),
    [`${prefix}_RETRIES`]: z.coerce
      .number()
      .int()
      .min(0)
      .max(10)
      .default(base.retries)
      .describe(
        `Retries of a read or an idempotent write that failed for a passing reason (timeout, 429, 5xx), with capped exponential backoff and jitter; \`Retry-After\` is honoured.${vendorOnly}`,
      ),
    [`${prefix}_MAX_CONCURRENT`]: positiveInt(base.maxConcurrent).describe(
      `Calls in flight to the vendor at most (a bulkhead under its rate limits); more wait.${vendorOnly}`,
    ),
    [`${prefix}_BREAKER_THRESHOLD`]: positiveInt(base.breakerThreshold).describe(
      `Consecutive failures that open the circuit breaker: while it is open, calls fail at once instead of waiting on a system that is down.${vendorOnly}`,
    ),
    [`${prefix}_BREAKER_OPEN_MS`]: positiveInt(base.breakerOpenMs).describe(
      `How long an open breaker refuses calls before it lets one through to try, in ms.${vendorOnly}`,
    ),
    [`${prefix}_API_RESERVE`]: z.coerce
      .number({ error: 'must be a number from 0 to 0.9' })
      .min(0, 'must be 0 or more')
      .max(0.9, 'must be at most 0.9')
      .default(base.apiReserve ?? DEFAULT_BUDGET_POLICY.reserve)
      .describe(
        `The share of the vendor's API limit (as its rate-limit headers report it) kept for interactive queries: below it, background work (workflow steps, feed polls, callers sending \`concord-priority: background\`) waits its turn.${vendorOnly}`,
      ),
    [`${prefix}_BACKGROUND_WAIT_MS`]: positiveInt(base.backgroundWaitMs ?? DEFAULT_BUDGET_POLICY.maxWaitMs).describe(
      `How long background work waits for the API budget before it is given up (a workflow step is then tried again later), in ms.${vendorOnly}`,
    ),
  });
}

/**
 * How a system is called, from <PREFIX>_TIMEOUT_MS, _RETRIES, _MAX_CONCURRENT,
 * _BREAKER_THRESHOLD and _BREAKER_OPEN_MS; the defaults keep well below vendors' limits.
 */
export function loadResiliencePolicy(prefix: string, env: NodeJS.ProcessEnv, defaults: Partial<ResiliencePolicy> = {}): ResiliencePolicy {
  const base = { ...DEFAULT_POLICY, ...defaults };
  const vars = readEnv(resilienceEnvSchema(prefix, defaults), env) as Record<string, number>;
  return {
    ...base,
    timeoutMs: vars[`${prefix}_TIMEOUT_MS`]!,
    retries: vars[`${prefix}_RETRIES`]!,
    maxConcurrent: vars[`${prefix}_MAX_CONCURRENT`]!,
    breakerThreshold: vars[`${prefix}_BREAKER_THRESHOLD`]!,
    breakerOpenMs: vars[`${prefix}_BREAKER_OPEN_MS`]!,
    apiReserve: vars[`${prefix}_API_RESERVE`]!,
    backgroundWaitMs: vars[`${prefix}_BACKGROUND_WAIT_MS`]!,
  };
}

/** A value the chosen connector needs: a ConfigError naming the variable when it is missing. */
export function required<T>(value: T | undefined, variable: string, why: string): T {
  if (value === undefined || value === '') throw new ConfigError(`Invalid configuration:\n  ${variable}: required ${why}`);
  return value;
}

/** Token grants as configuration gives them, or a fixed access token. */
export type TokenConfig = { kind: 'static'; token: string } | OAuthGrant;

export { httpUrl };

/**
 * Access tokens for a vendor connector: the fixed one, or the grant's (cached). `refresh`
 * drops the cache and fetches a new one, for an adapter's single retry after a 401.
 */
export function tokenSourceOf(config: TokenConfig, system: string): (() => Promise<string>) & { refresh: () => Promise<string> } {
  if (config.kind === 'static') {
    const fixed = async () => config.token;
    return Object.assign(fixed, { refresh: fixed });
  }
  const source = oauthTokenSource(config, system);
  return Object.assign(() => source(), {
    refresh: () => {
      source.invalidate();
      return source();
    },
  });
}
