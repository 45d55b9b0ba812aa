import { createHash } from 'node:crypto';
import type { GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { getNamedType, Kind, parse, type DocumentNode, type GraphQLSchema } from 'graphql';
import { LRUCache } from 'lru-cache';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { CacheStore } from '../../../platform/cache.ts';
import type { Identity } from '../../../platform/identity.ts';
import type { Logger } from '../../../platform/logger.ts';
import { SharedFetches } from '../shared-fetches.ts';
import { CachePolicy, type FetchCachePlan, type TierTtls } from './policy.ts';

/** The store namespace whole answers live in (response-cache.ts); every change notice drops it. */
export const RESPONSE_NAMESPACE = 'response';

/** GraphQLDataSourceRequestKind.INCOMING_OPERATION (the enum is not exported): a client's operation, not a health check. */
export const INCOMING_OPERATION = 'incoming operation' as GraphQLDataSourceProcessOptions['kind'];
type Response = Awaited<ReturnType<import('@apollo/gateway').RemoteGraphQLDataSource['process']>>;
type Representation = Record<string, unknown> & { __typename?: unknown };
/** Hears when each part of an answer expires (see response-cache.ts). */
export interface Lifetime {
  note(expires: number): void;
  /**
   * The answer holds this record (its type and stored key), or, with a null key, something no
   * one record names (a list, a search): a change notice for it drops the whole answer.
   */
  holds?(namespace: string, key: string | null): void;
}
const NO_LIFETIME: Lifetime = { note: () => undefined };

/**
 * Bytes for the cache plans of subgraph queries. The query planner writes a client's literals
 * into the subgraph queries, so their text is the client's to choose: the bound is in bytes (a
 * query counted at its length), not entries, and a plan of a query larger than a sixteenth of
 * it is computed each time instead of kept.
 */
const PLAN_CACHE_BYTES = 8 * 1024 * 1024;
/** Bytes for the invalidation marks kept (keyed by record ids from change notices). */
const TOMBSTONE_BYTES = 8 * 1024 * 1024;

/** Hot entries are refreshed in the background in the last 30% of their life… */
const REFRESH_AHEAD_SHARE = 0.3;
/** …when that life is long enough for it to matter. */
const MIN_REFRESH_TTL_MS = 1_000;
/**
 * One cached entity: its answers by variant (subgraph, caller scope, selection), each as JSON
 * with its expiry. Only the variant asked for is parsed, into a copy of the caller's own: the
 * executor merges answers into its result in place.
 */
type Variant = { s: string; e: number; t: number };
type Entry = Record<string, Variant>;

function readVariant(variant: Variant): unknown {
  if (typeof variant.s !== 'string') return undefined;
  try {
    return JSON.parse(variant.s) as unknown;
  } catch {
    return undefined; // a value this version cannot read is a miss
  }
}

/**
 * The gateway's cache of what subgraphs answer, one entity at a time.
 *
 * An `_entities` fetch the query planner sends (customers for 100 cases, the products of an
 * order's lines) is split: entities cached for this caller's scope and this selection are taken
 * from the cache, only the others are fetched, and the answer is put back together in the order
 * asked, errors re-pointed at their entity. A fetch of root fields (`case(id:)`, `cases(…)`) is
 * cached whole. How long is the policy's: the shortest tier among the fields selected.
 *
 * Scope: what a subgraph answers depends on the caller's roles (field rules) and, for a portal
 * customer, on the customer (row rules), and on nothing else of the identity. Every variant is
 * keyed by those, by the subgraph and by the exact selection, so one caller's answer is never
 * served to a caller whose scope differs. Entities are stored under their type and key, all
 * variants together, so that a change notice for one record drops every variant of it at once.
 *
 * Answers with errors are not cached, nor are null entities (unknown, or not this caller's).
 */
export class EntityCache {
  private readonly policy: CachePolicy;
  private schema: GraphQLSchema | undefined;
  private keyFields = new Map<string, readonly string[]>();
  private readonly plans = new LRUCache<string, Plan>({
    maxSize: PLAN_CACHE_BYTES,
    maxEntrySize: PLAN_CACHE_BYTES / 16,
    sizeCalculation: (plan, query) => query.length * 2 + planBytes(plan),
  });
  private readonly lookups: Counter<'tier' | 'type' | 'outcome'> | undefined;
  private readonly writes = new Set<Promise<void>>();
  private readonly chains = new Map<string, Promise<void>>();
  /** When each record (or type, `*`) was last invalidated here: writes fetched before it are dropped. */
  private readonly tombstones = new LRUCache<string, number>({
    maxSize: TOMBSTONE_BYTES,
    sizeCalculation: (_at, key) => key.length * 2 + 64,
    ttl: 2 * 3_600_000,
    // A change forgotten (evicted, or past its time) is still a change: what was built before it
    // counts as changed, whatever it holds.
    dispose: (at, _key, reason) => {
      if ((reason === 'evict' || reason === 'expire') && at > this.forgottenBefore) this.forgottenBefore = at;
    },
  });
  /**
   * Changes up to this time are not remembered one by one: those forgotten, and those applied
   * before this process began (answers another replica stored then may hold them).
   */
  private forgottenBefore = Date.now();
  private readonly refreshing = new Set<string>();
  private readonly refreshes: Counter | undefined;
  private readonly shared: SharedFetches;

  constructor(
    private readonly store: CacheStore,
    ttls: TierTtls,
    private readonly logger: Logger,
    registry?: Registry,
    /** Identical fetches in flight, shared with the gateway's uncached fetches (one per process). */
    shared?: SharedFetches,
  ) {
    this.shared = shared ?? new SharedFetches(registry);
    this.policy = new CachePolicy(ttls);
    this.lookups = registry
      ? new Counter({
          name: 'concord_cache_lookups_total',
          help: 'Lookups in the gateway cache, by tier (entity: entities and root fetches; response: whole answers), type and outcome (hit, miss, uncacheable).',
          labelNames: ['tier', 'type', 'outcome'],
          registers: [registry],
        })
      : undefined;
    this.refreshes = registry
      ? new Counter({
          name: 'concord_cache_refreshes_total',
          help: 'Hot cache entries fetched again in the background before they expired.',
          registers: [registry],
        })
      : undefined;
    if (registry) {
      const plans = this.plans;
      new Gauge({
        name: 'concord_cache_plan_bytes',
        help: `Bytes held by the cache plans of subgraph queries (bounded at ${PLAN_CACHE_BYTES}).`,
        registers: [registry],
        collect() {
          this.set(plans.calculatedSize);
        },
      });
    }
  }

  /** A whole answer looked up in the response tier (response-cache.ts): found or not. */
  countAnswerLookup(found: boolean): void {
    this.lookups?.inc({ tier: 'response', type: 'answer', outcome: found ? 'hit' : 'miss' });
  }

  /** Follows the served supergraph: the API schema for lifetimes, the @key fields for cache keys. */
  setSchema(apiSchema: GraphQLSchema, coreSupergraphSdl: string): void {
    this.schema = apiSchema;
    this.keyFields = keyFieldsOf(coreSupergraphSdl);
    this.plans.clear();
  }

  /**
   * Runs one subgraph fetch through the cache; `fetch` sends a (possibly smaller) request to the
   * subgraph. `lifetime` hears when each part of the answer expires (0: may not be cached), for
   * the whole-answer cache.
   */
  async process(
    subgraph: string,
    identity: Identity,
    options: GraphQLDataSourceProcessOptions,
    fetch: (options: GraphQLDataSourceProcessOptions) => Promise<Response>,
    lifetime: Lifetime = NO_LIFETIME,
  ): Promise<Response> {
    const query = options.request.query;
    const uncached = () => {
      lifetime.note(0);
      return fetch(options);
    };
    if (!this.schema || !query || options.kind !== INCOMING_OPERATION) return uncached();
    const plan = this.planOf(query, (options as { document?: DocumentNode }).document);
    if (plan.kind === 'none') return uncached();
    const variables = options.request.variables ?? {};
    const scope = scopeOf(identity);
    if (plan.kind === 'root') return this.root(subgraph, scope, plan, variables, options, fetch, lifetime);
    const { representations, ...rest } = variables as { representations?: Representation[] };
    if (!Array.isArray(representations)) return uncached();
    const variant = `${subgraph}|${scope}|${plan.hash}|${Object.keys(rest).length ? digest(stableJson(rest)) : ''}`;
    return this.entities(variant, plan.ttlMsByType, representations, options, fetch, lifetime);
  }

  /**
   * Drops the cached answers for these records of a type (every caller, every subgraph), or for
   * the whole type, then every whole answer. It also marks the time: anything fetched before it
   * (a fetch in flight, a refresh, a whole answer being built) is not stored afterwards, and
   * variants stored before it are not carried over by a later write. False when the store could
   * not be told (the caller should have the notice sent again).
   */
  async invalidate(type: string, ids?: readonly string[]): Promise<boolean> {
    const at = Date.now();
    this.lastInvalidation = at;
    this.shared.changed();
    const fields = this.keyFields.get(type);
    let done: boolean;
    if (!ids || !fields || fields.length !== 1) {
      this.tombstones.set(`${type}\u0000*`, at);
      done = await this.store.clear(type);
      this.logger.info({ type, done }, 'cache: dropped every entry of the type');
    } else {
      const keys = ids.map((id) => JSON.stringify(String(id)));
      for (const key of keys) this.tombstones.set(`${type}\u0000${key}`, at);
      done = await this.store.delete(type, keys);
      this.logger.info({ type, ids, done }, 'cache: dropped entries');
    }
    // Whole answers name what they hold; each is checked against the changes when it is read.
    return done;
  }

  /** When the last change notice was applied here. */
  lastInvalidation = 0;

  /**
   * Whether a change notice applied since `since` concerns an answer holding these records
   * (`namespace\u0000key`, as Lifetime.holds names them), or, with `anything`, any notice at all.
   */
  changedSince(holds: Iterable<string>, anything: boolean, since: number): boolean {
    if (anything ? this.lastInvalidation >= since : since <= this.forgottenBefore) return true;
    for (const held of holds) {
      const at = held.indexOf('\u0000');
      if (this.invalidatedAt(held.slice(0, at), held.slice(at + 1)) >= since) return true;
    }
    return false;
  }

  /** The latest invalidation of this record or its whole type, 0 if none is remembered. */
  private invalidatedAt(namespace: string, key: string): number {
    return Math.max(this.tombstones.get(`${namespace}\u0000${key}`) ?? 0, this.tombstones.get(`${namespace}\u0000*`) ?? 0);
  }

  private planOf(query: string, document: DocumentNode | undefined): Plan {
    let plan = this.plans.get(query);
    if (!plan) {
      const parsed = document ?? parse(query);
      const fetchPlan = this.policy.planFetch(this.schema!, parsed);
      plan =
        fetchPlan.kind === 'root'
          ? { ...fetchPlan, hash: digest(query), lookup: keyLookupOf(this.schema!, parsed, this.keyFields) }
          : { ...fetchPlan, hash: digest(query) };
      this.plans.set(query, plan);
    }
    return plan;
  }

  /**
   * A root fetch. One that looks a record up by its key (`case(id:)`, `product(sku:)`) is stored
   * with that record's entries, so a change notice for the record drops it too; any other (a
   * search, a list) is stored on its own and lives only as long as its lifetime.
   */
  private async root(
    subgraph: string,
    scope: string,
    plan: RootPlan,
    variables: Record<string, unknown>,
    options: GraphQLDataSourceProcessOptions,
    fetch: (options: GraphQLDataSourceProcessOptions) => Promise<Response>,
    lifetime: Lifetime,
  ): Promise<Response> {
    const variant = `root|${subgraph}|${scope}|${plan.hash}|${digest(stableJson(variables))}`;
    const keyValue = plan.lookup?.variable !== undefined ? variables[plan.lookup.variable] : plan.lookup?.literal;
    const lookup =
      plan.lookup && keyValue !== undefined && keyValue !== null && typeof keyValue !== 'object'
        ? { namespace: plan.lookup.type, key: JSON.stringify(String(keyValue)) }
        : { namespace: 'root', key: digest(variant) };
    lifetime.holds?.(lookup.namespace, lookup.namespace === 'root' ? null : lookup.key);
    const now = Date.now();
    const [cached] = await this.store.getMany(lookup.namespace, [lookup.key]);
    const hit = (cached as Entry | undefined)?.[variant];
    // A look-up that found nothing is not kept: any caller could fill the cache with misses.
    const storable = (response: Response) =>
      !response.errors?.length && !!response.data && !(plan.lookup && Object.values(response.data).every((value) => value === null));
    const store = (response: Response, startedAt: number) => {
      if (storable(response))
        void this.write(lookup.namespace, lookup.key, variant, JSON.stringify(response.data), startedAt + plan.ttlMs, startedAt);
    };
    const data = hit && hit.e > now ? readVariant(hit) : undefined;
    if (data !== undefined) {
      this.lookups?.inc({ tier: 'entity', type: 'root', outcome: 'hit' });
      if (this.dueForRefresh(hit!.e, plan.ttlMs, now)) {
        this.refreshAhead([`${lookup.namespace}|${lookup.key}|${variant}`], async () => {
          const startedAt = Date.now();
          store(await fetch(options), startedAt);
        });
      }
      lifetime.note(hit!.e);
      return { data: data as Record<string, unknown> };
    }
    this.lookups?.inc({ tier: 'entity', type: 'root', outcome: 'miss' });
    const startedAt = Date.now();
    const response = await this.once(variant, () => fetch(options));
    store(response, startedAt);
    lifetime.note(storable(response) ? startedAt + plan.ttlMs : 0);
    return response;
  }

  /**
   * A hot entry in the last part of its life is fetched again in the background, so the callers
   * that keep asking for it find a fresh one instead of all waiting on a miss when it expires.
   * What is served is always within its lifetime: this shortens waits, not the bound on staleness.
   */
  private dueForRefresh(expires: number, ttlMs: number, now: number): boolean {
    return ttlMs >= MIN_REFRESH_TTL_MS && expires - now < ttlMs * REFRESH_AHEAD_SHARE;
  }

  private refreshAhead(keys: readonly string[], refresh: () => Promise<void>): void {
    if (keys.some((key) => this.refreshing.has(key))) return;
    for (const key of keys) this.refreshing.add(key);
    this.refreshes?.inc();
    refresh()
      .catch((error: unknown) => this.logger.debug({ err: error }, 'cache: a refresh ahead of expiry failed'))
      .finally(() => {
        for (const key of keys) this.refreshing.delete(key);
      });
  }

  /** Identical fetches in flight at once (same subgraph, scope, selection and variables) go to the subgraph once. */
  private once(key: string, fetch: () => Promise<Response>): Promise<Response> {
    return this.shared.run(key, fetch);
  }

  /** Resolves once every write started so far has reached the store (answers never wait for them). */
  async flush(): Promise<void> {
    await Promise.all([...this.writes]);
  }

  /**
   * Stores one variant in an entity's entry, keeping its other live variants. Writes to one key
   * from this process run one after the other, each re-reading the entry: the fetches of one
   * request often answer for the same entity from several subgraphs at once. (Two replicas
   * writing one key at the same instant can still lose a variant: that costs one miss.)
   */
  private write(namespace: string, key: string, variant: string, json: string, expires: number, startedAt: number): Promise<void> {
    const chainKey = `${namespace}\u0000${key}`;
    const write = (this.chains.get(chainKey) ?? Promise.resolve())
      .then(async () => {
        const now = Date.now();
        const invalidatedAt = this.invalidatedAt(namespace, key);
        // Fetched before a change notice, or already past its lifetime: not stored.
        if (startedAt <= invalidatedAt || expires <= now) return;
        const [stored] = await this.store.getMany(namespace, [key], { forWrite: true });
        const entry = (stored ?? {}) as Entry;
        const next: Entry = {};
        let longest = expires;
        for (const [name, cached] of Object.entries(entry)) {
          if (!cached || typeof cached.e !== 'number' || cached.e <= now || name === variant) continue;
          // A variant fetched before the last notice for this record is not carried over.
          if (typeof cached.t !== 'number' || cached.t <= invalidatedAt) continue;
          next[name] = cached;
          longest = Math.max(longest, cached.e);
        }
        next[variant] = { s: json, e: expires, t: startedAt };
        await this.store.set(namespace, key, next, longest - now);
      })
      .catch((error: unknown) => this.logger.warn({ err: error }, 'cache: a write failed; the entry stays a miss'))
      .finally(() => {
        this.writes.delete(write);
        if (this.chains.get(chainKey) === write) this.chains.delete(chainKey);
      });
    this.chains.set(chainKey, write);
    this.writes.add(write);
    return write;
  }

  private async entities(
    variant: string,
    ttlMsByType: ReadonlyMap<string, number>,
    representations: readonly Representation[],
    options: GraphQLDataSourceProcessOptions,
    fetch: (options: GraphQLDataSourceProcessOptions) => Promise<Response>,
    lifetime: Lifetime,
  ): Promise<Response> {
    const now = Date.now();
    const keys = representations.map((representation) => this.keyOf(representation, ttlMsByType, variant));
    for (const key of keys) if (key) lifetime.holds?.(key.type, key.key);
    // One read per type present, all in parallel.
    const byType = new Map<string, number[]>();
    keys.forEach((key, index) => {
      if (!key) return;
      const list = byType.get(key.type) ?? byType.set(key.type, []).get(key.type)!;
      list.push(index);
    });
    const entries = new Array<Entry | undefined>(representations.length);
    await Promise.all(
      [...byType].map(async ([type, indexes]) => {
        const values = await this.store.getMany(
          type,
          indexes.map((index) => keys[index]!.key),
        );
        values.forEach((value, at) => {
          if (value !== undefined) entries[indexes[at]!] = value as Entry;
        });
      }),
    );

    const result = new Array<unknown>(representations.length).fill(null);
    const missing: number[] = [];
    const stale: number[] = [];
    // Counted per type and outcome, one metric update each rather than one per entity.
    const counts = new Map<string, number>();
    representations.forEach((representation, index) => {
      const hit = keys[index] ? entries[index]?.[keys[index]!.variant] : undefined;
      const data = hit && hit.e > now ? readVariant(hit) : undefined;
      let outcome: string;
      if (data !== undefined) {
        result[index] = data;
        outcome = 'hit';
        lifetime.note(hit!.e);
        if (this.dueForRefresh(hit!.e, keys[index]!.ttlMs, now)) stale.push(index);
      } else {
        missing.push(index);
        outcome = keys[index] ? 'miss' : 'uncacheable';
      }
      const counted = `${String(representation.__typename)}\u0000${outcome}`;
      counts.set(counted, (counts.get(counted) ?? 0) + 1);
    });
    for (const [counted, count] of counts) {
      const [type, outcome] = counted.split('\u0000');
      this.lookups?.inc({ tier: 'entity', type: type!, outcome: outcome! }, count);
    }
    const only = (indexes: number[]): GraphQLDataSourceProcessOptions =>
      indexes.length === representations.length
        ? options
        : {
            ...options,
            request: {
              ...options.request,
              variables: { ...options.request.variables, representations: indexes.map((index) => representations[index]) },
            },
          };
    if (stale.length) {
      const refreshKey = (index: number) => `${keys[index]!.type}|${keys[index]!.key}|${keys[index]!.variant}`;
      const due = stale.filter((index) => !this.refreshing.has(refreshKey(index)));
      if (due.length) {
        this.refreshAhead(due.map(refreshKey), async () => {
          const startedAt = Date.now();
          const fresh = await fetch(only(due));
          const { failed, untied } = failuresOf(fresh);
          if (untied) return;
          const values = (fresh.data as { _entities?: unknown[] } | null | undefined)?._entities;
          due.forEach((index, at) => {
            const value = values?.[at];
            const key = keys[index]!;
            if (value !== undefined && value !== null && !failed.has(at))
              void this.write(key.type, key.key, key.variant, JSON.stringify(value), startedAt + key.ttlMs, startedAt);
          });
        });
      }
    }
    if (!missing.length) return { data: { _entities: result } };

    const partial = missing.length < representations.length;
    const missingKey = `${variant}|${stableJson(missing.map((index) => representations[index]))}`;
    const startedAt = Date.now();
    const response = await this.once(missingKey, () => fetch(only(missing)));
    const fetched = (response.data as { _entities?: unknown[] } | null | undefined)?._entities;
    // An error that names no entity may concern any of them: then none is kept.
    const { failed, untied } = failuresOf(response);
    const errors = response.errors?.map((error) => {
      const path = error.path;
      if (path?.[0] !== '_entities' || typeof path[1] !== 'number' || !partial) return error;
      return { ...error, path: ['_entities', missing[path[1]]!, ...path.slice(2)] };
    });
    missing.forEach((index, at) => {
      const value = fetched?.[at] ?? null;
      result[index] = value;
      const key = keys[index];
      if (!key || value === null || failed.has(at) || untied) {
        lifetime.note(0);
        return;
      }
      lifetime.note(startedAt + key.ttlMs);
      // Serialised now: the executor merges later fetches into this very object.
      void this.write(key.type, key.key, key.variant, JSON.stringify(value), startedAt + key.ttlMs, startedAt);
    });
    if (response.errors?.length) lifetime.note(0);
    return {
      ...response,
      data: fetched || !response.data ? { ...(response.data ?? {}), _entities: result } : response.data,
      ...(errors ? { errors } : {}),
    };
  }

  /**
   * Where an entity is stored (its type and key) and under which variant. A representation that
   * carries more than its key (fields an @requires asks for, such as a contract's support tier)
   * gets a variant of its own for those values: the answer depends on them.
   */
  private keyOf(representation: Representation, ttlMsByType: ReadonlyMap<string, number>, variant: string) {
    const type = representation.__typename;
    if (typeof type !== 'string') return undefined;
    const ttlMs = ttlMsByType.get(type) ?? 0;
    const fields = this.keyFields.get(type);
    if (ttlMs <= 0 || !fields?.length) return undefined;
    const values = fields.map((field) => representation[field]);
    if (values.some((value) => value === undefined || value === null || typeof value === 'object')) return undefined;
    const extra = Object.keys(representation).filter((field) => field !== '__typename' && !fields.includes(field));
    const required = extra.length ? `|${digest(stableJson(Object.fromEntries(extra.map((field) => [field, representation[field]]))))}` : '';
    return { type, key: values.map((value) => JSON.stringify(String(value))).join('|'), ttlMs, variant: variant + required };
  }
}

type RootPlan = Extract<FetchCachePlan, { kind: 'root' }> & {
  hash: string;
  /** The record the fetch looks up by its key, if that is what it does. */
  lookup: { type: string; variable?: string; literal?: string } | undefined;
};
type Plan = RootPlan | (Exclude<FetchCachePlan, { kind: 'root' }> & { hash: string });

/** `case(id: $id)`: one root field whose only argument is the @key field of the type it returns. */
function keyLookupOf(schema: GraphQLSchema, document: DocumentNode, keyFields: ReadonlyMap<string, readonly string[]>) {
  const operation = document.definitions.find((definition) => definition.kind === Kind.OPERATION_DEFINITION);
  const selections = operation?.selectionSet.selections.filter(
    (selection) => !(selection.kind === Kind.FIELD && selection.name.value === '__typename'),
  );
  const field = selections?.length === 1 && selections[0]!.kind === Kind.FIELD ? selections[0] : undefined;
  if (!field || field.arguments?.length !== 1) return undefined;
  const definition = schema.getQueryType()?.getFields()[field.name.value];
  if (!definition) return undefined;
  const type = getNamedType(definition.type).name;
  const argument = field.arguments[0]!;
  if (keyFields.get(type)?.[0] !== argument.name.value || keyFields.get(type)?.length !== 1) return undefined;
  const value = argument.value;
  if (value.kind === Kind.VARIABLE) return { type, variable: value.name.value };
  if (value.kind === Kind.STRING || value.kind === Kind.INT) return { type, literal: value.value };
  return undefined;
}

/**
 * What a subgraph's answer depends on besides the request: the roles (field rules) and the
 * portal customer (row rules). Subjects with the same roles see the same data.
 */
/**
 * Whether an identity's calls bypass the caches: Concord's own processes (the integration
 * identity) decide on what they read (is the opportunity ordered yet, is the case still open),
 * so they read the systems, never a copy that may be seconds old.
 */
export function readsFresh(identity: Identity): boolean {
  return identity.roles.includes('integration');
}

export function scopeOf(identity: Identity): string {
  return `${[...identity.roles].sort().join(',')}|${identity.customerId ?? ''}`;
}

/** Each entity type's @key fields (the first key of the first subgraph that declares one). */
export function keyFieldsOf(coreSupergraphSdl: string): Map<string, readonly string[]> {
  const keys = new Map<string, readonly string[]>();
  const typeBlock = /^type (\w+)\n((?:\s+@[^\n]+\n)+)/gm;
  for (const match of coreSupergraphSdl.matchAll(typeBlock)) {
    const key = /@join__type\(graph: \w+, key: "([^"]+)"/.exec(match[2]!)?.[1];
    // Composite or nested keys are left uncached rather than keyed wrongly.
    if (key && /^\w+$/.test(key.trim())) keys.set(match[1]!, [key.trim()]);
  }
  return keys;
}

/** Entities an answer's errors point at, and whether one names none (it may concern any). */
function failuresOf(response: Response): { failed: Set<number>; untied: boolean } {
  const failed = new Set<number>();
  let untied = false;
  for (const error of response.errors ?? []) {
    const path = error.path;
    if (path?.[0] === '_entities' && typeof path[1] === 'number') failed.add(path[1]);
    else untied = true;
  }
  return { failed, untied };
}

/** About what a plan holds besides its query: a few strings and numbers, one per type it caches. */
function planBytes(plan: Plan): number {
  const types = 'ttlMsByType' in plan ? plan.ttlMsByType.size : 1;
  return 256 + 96 * types;
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 22);
}

/** JSON with object keys sorted, so equal variables give equal keys. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${stableJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
