/**
 * The realistic agent-console load: what a room of support agents sends through the gateway,
 * drawn from a seeded generator so every gateway of a round gets the same sequence of requests.
 *
 * - CaseContext (70 %) over thousands of distinct real cases, their popularity Zipf-like
 *   (s ≈ 1): a few cases are open on many screens, most are looked at once in a while.
 * - CaseQueue (28 %) over the queue views agents keep: status filters, page sizes, priority and
 *   assignee filters, and next pages (`after` cursors taken from real first pages), the common
 *   views far more often than the rare ones (Zipf-like again).
 * - Writes (2 %): an internal note on a case (`recordCaseUpdate`, the mutation through which the
 *   desk gets its notes, as Concord's return workflow writes them), sent through the gateway
 *   under test as Concord's `integration` identity. The support subgraph's change feed publishes
 *   the change to the event broker (concord.case.updated), as it does for any change to the
 *   desk, and Concord's gateway drops the case from its caches when that notice arrives.
 */

/** A small, fast, seedable generator (mulberry32): the same seed, the same sequence. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Draws ranks 0..n-1 with P(rank k) ∝ 1/(k+1)^s, by binary search over the cumulative weights. */
export function zipfSampler(n: number, s = 1): (random: () => number) => number {
  if (n < 1) throw new RangeError('a Zipf sampler needs at least one item');
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    total += 1 / Math.pow(k + 1, s);
    cumulative[k] = total;
  }
  return (random) => {
    const target = random() * total;
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (cumulative[mid]! < target) low = mid + 1;
      else high = mid;
    }
    return low;
  };
}

/** The same items in an order fixed by the seed (Fisher–Yates). */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const random = seededRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export type RequestKind = 'CaseContext' | 'CaseQueue' | 'write';
export const REQUEST_KINDS: readonly RequestKind[] = ['CaseContext', 'CaseQueue', 'write'];

/** One CaseQueue view: its variables, and a short name for the report. */
export interface QueueVariant {
  name: string;
  variables: { first: number; after?: string; filter: Record<string, unknown> };
}

/** The shares of the mix, in percent of requests. */
export const MIX = { CaseContext: 70, CaseQueue: 28, write: 2 } as const;

export interface MixSpec {
  caseQuery: string;
  queueQuery: string;
  writeQuery: string;
  /** Case ids, hottest first: CaseContext draws from them by Zipf rank. */
  caseIds: readonly string[];
  /** Cases that are never written, so their answers can be checked across gateways at any time. */
  reserved: ReadonlySet<string>;
  /** Queue views, most common first: CaseQueue draws from them by Zipf rank. */
  queues: readonly QueueVariant[];
  /** Notes the benchmark adds to one case at most; past it a write goes to the next case down. */
  notesPerCase: number;
  /** Unique per run, so idempotency keys never repeat. */
  runId: string;
}

export interface MixRequest {
  kind: RequestKind;
  body: string;
}

/** A request as the load generator sends it: with its Authorization header (reads and writes differ). */
export interface GeneratedRequest extends MixRequest {
  authorization: string;
}

/**
 * The state every generator of a run shares: how many notes each case got from the benchmark
 * (the cap keeps the hottest cases from growing a conversation of thousands of notes over a
 * run), and a counter for idempotency keys.
 */
export class MixState {
  readonly notes = new Map<string, number>();
  writes = 0;
  constructor(readonly spec: MixSpec) {}
}

/**
 * A generator of requests for one connection: seeded by (seed, connection), so the same round
 * gives every gateway the same requests in the same order on each connection.
 */
export function mixGenerator(state: MixState, seed: number, connection: number): () => MixRequest {
  const { spec } = state;
  const random = seededRandom((seed * 1_000_003 + connection * 7_919 + 1) >>> 0);
  const caseRank = zipfSampler(spec.caseIds.length);
  const queueRank = zipfSampler(spec.queues.length);
  const contextBodies = new Map<string, string>();
  const queueBodies = spec.queues.map((queue) =>
    JSON.stringify({ query: spec.queueQuery, operationName: 'CaseQueue', variables: queue.variables }),
  );
  return () => {
    const roll = random() * 100;
    if (roll < MIX.CaseContext) {
      const id = spec.caseIds[caseRank(random)]!;
      let body = contextBodies.get(id);
      if (!body) {
        body = JSON.stringify({ query: spec.caseQuery, operationName: 'CaseContext', variables: { id } });
        contextBodies.set(id, body);
      }
      return { kind: 'CaseContext', body };
    }
    if (roll < MIX.CaseContext + MIX.CaseQueue) return { kind: 'CaseQueue', body: queueBodies[queueRank(random)]! };
    // Agents write on the cases they read: the same popularity, never a reserved case, and no
    // case past its cap (the next one down the ranking takes the note).
    let rank = caseRank(random);
    for (let tries = 0; tries < spec.caseIds.length; tries++, rank = (rank + 1) % spec.caseIds.length) {
      const id = spec.caseIds[rank]!;
      if (spec.reserved.has(id) || (state.notes.get(id) ?? 0) >= spec.notesPerCase) continue;
      state.notes.set(id, (state.notes.get(id) ?? 0) + 1);
      const key = `bench-${spec.runId}-${++state.writes}`;
      const body = JSON.stringify({
        query: spec.writeQuery,
        operationName: 'RecordCaseUpdate',
        variables: {
          input: { caseId: id, idempotencyKey: key, internalNote: `Benchmark note ${state.writes}: called the customer back.` },
        },
      });
      return { kind: 'write', body };
    }
    // Every case at its cap: read instead.
    return { kind: 'CaseQueue', body: queueBodies[0]! };
  };
}

/** The write the mix sends: the note, and what the answer needs to show it was applied. */
export const WRITE_QUERY = `mutation RecordCaseUpdate($input: RecordCaseUpdateInput!) {
  recordCaseUpdate(input: $input) {
    id
    updatedAt
  }
}`;

/**
 * The queue views: every status filter agents use, at the page sizes a console offers, the
 * default view first; then priority and assignee views, and next pages of the default views.
 */
export function queueVariants(options: {
  assignees: readonly string[];
  cursors: readonly { name: string; first: number; after: string }[];
}): QueueVariant[] {
  const views: QueueVariant[] = [];
  const statuses: [string, string[]][] = [
    ['new+open', ['NEW', 'OPEN']],
    ['open', ['OPEN']],
    ['new', ['NEW']],
    ['pending', ['PENDING']],
    ['on-hold', ['ON_HOLD']],
    ['pending+on-hold', ['PENDING', 'ON_HOLD']],
  ];
  const sizes = [25, 50, 10, 100];
  for (const [name, status] of statuses)
    for (const first of sizes) views.push({ name: `${name}/${first}`, variables: { first, filter: { status } } });
  for (const first of [25, 50]) {
    views.push({ name: `urgent+high/${first}`, variables: { first, filter: { status: ['NEW', 'OPEN'], priority: ['URGENT', 'HIGH'] } } });
    views.push({ name: `urgent/${first}`, variables: { first, filter: { status: ['NEW', 'OPEN', 'PENDING'], priority: ['URGENT'] } } });
  }
  for (const assignee of options.assignees)
    views.push({ name: `assignee ${assignee}/25`, variables: { first: 25, filter: { status: ['NEW', 'OPEN', 'PENDING'], assignee } } });
  for (const cursor of options.cursors)
    views.push({ name: cursor.name, variables: { first: cursor.first, after: cursor.after, filter: { status: ['NEW', 'OPEN'] } } });
  // Ordered by how common a view is, so the Zipf ranking favours the views agents keep open:
  // the default queue at each page size (25 first), then the other filters by page size, then
  // the assignee views, then the next pages.
  const rank = (view: QueueVariant) =>
    (view.name.startsWith('new+open/') ? 0 : 10) +
    sizes.indexOf(view.variables.first) +
    (view.variables.after ? 30 : 0) +
    (view.name.startsWith('assignee') ? 20 : 0);
  return views
    .map((view, i) => ({ view, i }))
    .sort((a, b) => rank(a.view) - rank(b.view) || a.i - b.i)
    .map(({ view }) => view);
}
