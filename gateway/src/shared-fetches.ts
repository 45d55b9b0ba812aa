import { Counter, type Registry } from 'prom-client';

type Response = Awaited<ReturnType<import('@apollo/gateway').RemoteGraphQLDataSource['process']>>;

/**
 * Identical subgraph fetches in flight at once go to the subgraph once, whether or not a cache
 * is on: a burst of agents opening the same case, the same queue page. Each caller gets its own
 * copy of the answer, since the executor merges answers into its result in place.
 *
 * A fetch is only joined by callers that began after the last change this process saw (a write
 * passing through it, a change notice): a read that follows its own write never gets an answer
 * fetched before the write.
 */
export class SharedFetches {
  private readonly flights = new Map<string, { joiners: number; pristine: Promise<Response> }>();
  private generation = 0;
  private readonly shared: Counter | undefined;

  constructor(registry?: Registry) {
    this.shared = registry
      ? new Counter({
          name: 'concord_subgraph_fetches_shared_total',
          help: 'Subgraph fetches answered by an identical fetch already in flight.',
          registers: [registry],
        })
      : undefined;
  }

  /** Something changed: fetches in flight now are not joined by callers from here on. */
  changed(): void {
    this.generation++;
  }

  /** `fetch` once for every caller with the same key while it is in flight. */
  async run(key: string, fetch: () => Promise<Response>): Promise<Response> {
    const id = `${this.generation}\u0000${key}`;
    const inFlight = this.flights.get(id);
    if (inFlight) {
      inFlight.joiners++;
      this.shared?.inc();
      return copyOf(await inFlight.pristine);
    }
    const flight = { joiners: 0, pristine: undefined as unknown as Promise<Response> };
    const started = fetch();
    // Copied as it arrives, before the first caller's executor can touch it.
    // No one joins once the answer is in: the entry goes in the same step the copy is made.
    const leave = () => {
      if (this.flights.get(id) === flight) this.flights.delete(id);
    };
    flight.pristine = started.then(
      (response) => {
        leave();
        return flight.joiners ? copyOf(response) : response;
      },
      (error: unknown) => {
        leave();
        throw error;
      },
    );
    flight.pristine.catch(() => undefined);
    this.flights.set(id, flight);
    return started;
  }
}

/** A deep copy of what a caller may change (data, errors, extensions); the HTTP response object is shared. */
export function copyOf(response: Response): Response {
  const { http, ...rest } = response as Response & { http?: unknown };
  return { ...structuredClone(rest), ...(http === undefined ? {} : { http }) } as Response;
}
