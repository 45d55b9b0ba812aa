/**
 * The cache's lifetime tiers (see policy.ts for which type and field is in which), apart from the
 * policy so that reading the configuration does not load GraphQL.
 */
export type Tier = 'reference' | 'profile' | 'record' | 'volatile' | 'never';
export type TierTtls = Readonly<Record<Exclude<Tier, 'never'>, number>>;

/** Seconds, overridable with CACHE_TTL (e.g. `reference=3600,profile=600,record=300,volatile=5`). */
export const DEFAULT_TIER_TTLS_S: TierTtls = { reference: 3600, profile: 600, record: 300, volatile: 5 };

/** TIER=seconds pairs, e.g. `reference=3600,volatile=5`; the rest keep their defaults. */
export function parseTierTtls(value: string | undefined): TierTtls {
  const ttls = { ...DEFAULT_TIER_TTLS_S };
  if (!value) return ttls;
  for (const pair of value.split(',')) {
    const [tier, seconds] = pair.split('=').map((part) => part.trim());
    if (!tier || !(tier in ttls)) throw new Error(`unknown tier "${tier}" (reference, profile, record, volatile)`);
    const parsed = Number(seconds);
    if (!Number.isFinite(parsed) || parsed < 0) throw new Error(`${tier} must be a number of seconds ≥ 0`);
    ttls[tier as keyof TierTtls] = parsed;
  }
  return ttls;
}
