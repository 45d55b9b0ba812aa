import { z } from 'zod';
import { ConfigError, httpUrl, positiveInt, readEnv } from './config.ts';
import { oauthTokenSource, type OAuthGrant } from './oauth.ts';
import { DEFAULT_POLICY, type ResiliencePolicy } from './resilience.ts';

/**
 * How a system is called, from <PREFIX>_TIMEOUT_MS, _RETRIES, _MAX_CONCURRENT,
 * _BREAKER_THRESHOLD and _BREAKER_OPEN_MS; the defaults keep well below vendors' limits.
 */
export function loadResiliencePolicy(prefix: string, env: NodeJS.ProcessEnv, defaults: Partial<ResiliencePolicy> = {}): ResiliencePolicy {
  const base = { ...DEFAULT_POLICY, ...defaults };
  const vars = readEnv(
    z.object({
      [`${prefix}_TIMEOUT_MS`]: positiveInt(base.timeoutMs),
      [`${prefix}_RETRIES`]: z.coerce.number().int().min(0).max(10).default(base.retries),
      [`${prefix}_MAX_CONCURRENT`]: positiveInt(base.maxConcurrent),
      [`${prefix}_BREAKER_THRESHOLD`]: positiveInt(base.breakerThreshold),
      [`${prefix}_BREAKER_OPEN_MS`]: positiveInt(base.breakerOpenMs),
    }),
    env,
  ) as Record<string, number>;
  return {
    ...base,
    timeoutMs: vars[`${prefix}_TIMEOUT_MS`]!,
    retries: vars[`${prefix}_RETRIES`]!,
    maxConcurrent: vars[`${prefix}_MAX_CONCURRENT`]!,
    breakerThreshold: vars[`${prefix}_BREAKER_THRESHOLD`]!,
    breakerOpenMs: vars[`${prefix}_BREAKER_OPEN_MS`]!,
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
