import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';
import { flushed, type Logger } from '../../platform/logger.ts';
import { startMetricsServer, type MetricsEndpoint } from '../../platform/metrics-endpoint.ts';
import { STOP_MARGIN_MS } from '../../platform/process.ts';

/**
 * The gateway on several cores: a primary process forks `count` workers that share the port
 * (node:cluster hands connections out round-robin) and does no GraphQL itself. It
 *
 * - replaces a worker that dies (with a pause when they keep dying, so a broken start does not
 *   spin, and exits 1 when they die more than five times each within a minute);
 * - gives each worker a slot (CONCORD_GATEWAY_WORKER_SLOT), which its replacement takes over, so
 *   the worker's durable event consumer (events.ts) resumes where the dead one acknowledged;
 * - answers a worker's /metrics for all workers, so a scrape sees the whole gateway: counters and
 *   histograms summed, gauges (memory, heap, event loop, cache sizes) one series per worker,
 *   labelled `worker`, since a sum would hide the one worker near its limit;
 * - serves the metrics port itself (METRICS_PORT), with the same answer, off the workers' API port.
 *
 * It stops with exit code 1 when a worker exits before it ever served during start-up (a port
 * in use, a supergraph that does not load): starting it again would fail the same way. SIGINT and
 * SIGTERM to the primary stop the workers gracefully (each drains its requests for up to the
 * grace); the primary logs "gateway stopped" when the last has exited, and exits 0.
 */
/** The exit code of a configuration error (EX_CONFIG), as every service uses it. */
const EX_CONFIG = 78;
/** Deaths per worker within a minute after which the primary gives up and exits 1. */
const GIVE_UP_AFTER_DEATHS_PER_WORKER = 5;

export interface PrimaryOptions {
  readonly count: number;
  readonly logger: Logger;
  readonly metrics?: MetricsEndpoint;
  readonly host?: string;
  /** How long a stopping worker may finish its requests (SHUTDOWN_GRACE_MS). */
  readonly shutdownGraceMs?: number;
}

export function runPrimary(options: PrimaryOptions): void {
  const { count, logger } = options;
  const metrics = options.metrics ?? { port: null, token: null };
  const host = options.host ?? '0.0.0.0';
  const shutdownGraceMs = options.shutdownGraceMs ?? 10_000;
  const scrapes = new Map<number, (metrics: WorkerMetrics | null) => void>();
  let nextScrape = 0;
  /** One worker's registry, or null when it does not answer within 2 s (it is left out of the scrape). */
  const scrape = (worker: Worker): Promise<WorkerMetrics | null> =>
    new Promise((resolve) => {
      const id = nextScrape++;
      const timer = setTimeout(() => {
        scrapes.delete(id);
        logger.warn({ pid: worker.process.pid }, 'a gateway worker did not answer for its metrics within 2 s');
        resolve(null);
      }, 2_000);
      scrapes.set(id, (metrics) => {
        clearTimeout(timer);
        scrapes.delete(id);
        resolve(metrics);
      });
      worker.send({ concord: 'scrape', id });
    });
  const clusterMetrics = async (): Promise<string> => {
    const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined && worker.isConnected());
    const answers = await Promise.all(workers.map(async (worker) => ({ worker, metrics: await scrape(worker) })));
    const perWorker = answers.flatMap(({ worker, metrics }) => (metrics ? [labelGauges(metrics, worker.id)] : []));
    return AggregatorRegistry.aggregate(perWorker).metrics();
  };
  let stopping = false;
  const recentDeaths: number[] = [];
  /** Workers that have listened; start-up is over once every first worker has. */
  const served = new Set<number>();
  let startedUp = false;

  /** Each worker's slot, 0…count-1: a replacement takes the dead one's, and with it its event consumer (gateway.ts). */
  const slots = new Map<number, number>();
  const fork = (slot: number): Worker => {
    const worker = cluster.fork({ [WORKER_SLOT_VARIABLE]: String(slot) });
    slots.set(worker.id, slot);
    worker.on('message', (message: WorkerMessage) => {
      if (message?.concord === 'scrape') {
        scrapes.get(message.id)?.(message.metrics);
      } else if (message?.concord === 'metrics') {
        clusterMetrics().then(
          (text) => worker.send({ concord: 'metrics', id: message.id, text }),
          (error: unknown) => worker.send({ concord: 'metrics', id: message.id, error: String(error) }),
        );
      }
    });
    return worker;
  };

  cluster.on('listening', (worker) => {
    served.add(worker.id);
    if (!startedUp && served.size >= count) {
      startedUp = true;
      logger.info({ workers: count }, 'gateway workers serving');
    }
  });

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    if (code === EX_CONFIG) {
      // A configuration error does not go away by starting again.
      logger.error({ pid: worker.process.pid }, 'a gateway worker refused its configuration; stopping');
      stop(EX_CONFIG);
      return;
    }
    if (!startedUp && !served.has(worker.id)) {
      // A worker that could not start (its error is on stderr) would fail again the same way.
      logger.error({ pid: worker.process.pid, code, signal }, 'a gateway worker exited before it served; the gateway cannot start');
      stop(1);
      return;
    }
    const now = Date.now();
    recentDeaths.push(now);
    while (recentDeaths.length && recentDeaths[0]! < now - 60_000) recentDeaths.shift();
    if (recentDeaths.length > count * GIVE_UP_AFTER_DEATHS_PER_WORKER) {
      // Workers that keep dying will not get better here; let the supervisor see a failed gateway.
      logger.error({ deaths: recentDeaths.length }, 'gateway workers keep exiting; stopping');
      stop(1);
      return;
    }
    const delayMs = recentDeaths.length > count ? 5_000 : 0;
    logger.error({ pid: worker.process.pid, code, signal, restartInMs: delayMs }, 'gateway worker exited; starting another');
    const slot = slots.get(worker.id) ?? 0;
    slots.delete(worker.id);
    setTimeout(() => {
      if (!stopping) fork(slot);
    }, delayMs);
  });

  const stop = (code = 0) => {
    if (stopping) return;
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined && !worker.isDead());
    logger.info({ workers: workers.length, graceMs: shutdownGraceMs }, 'gateway stopping');
    for (const worker of workers) worker.process.kill('SIGTERM');
    // A worker ends itself 5 s after its grace; one that has not by then is killed.
    const killer = setTimeout(
      () => {
        for (const worker of workers) if (!worker.isDead()) worker.process.kill('SIGKILL');
        logger.error({ graceMs: shutdownGraceMs }, 'gateway workers did not stop in time; killed');
        process.exit(1);
      },
      shutdownGraceMs + STOP_MARGIN_MS + 1_000,
    );
    Promise.all(workers.map((worker) => (worker.isDead() ? undefined : new Promise((done) => worker.once('exit', done))))).then(() => {
      clearTimeout(killer);
      logger.info('gateway stopped');
      void flushed(logger).then(() => process.exit(code));
    });
  };
  process.once('SIGINT', () => stop());
  process.once('SIGTERM', () => stop());

  if (metrics.port !== null) {
    startMetricsServer(
      { ...metrics, port: metrics.port },
      host,
      async () => ({ contentType: AggregatorRegistry.PROMETHEUS_CONTENT_TYPE, text: await clusterMetrics() }),
      (error) => logger.error({ err: error }, 'metrics of the workers failed'),
    ).then(
      ({ server, port }) => {
        logger.info({ port }, 'gateway metrics listening');
        process.once('exit', () => server.close());
      },
      (error: unknown) => {
        logger.error({ err: error, port: metrics.port }, 'the metrics port cannot be served; stopping');
        stop(1);
      },
    );
  }
  logger.info({ workers: count }, 'gateway starting its workers');
  for (let index = 0; index < count; index++) fork(index);
}

/** The variable a worker finds its slot in (set by the primary, not by people). */
export const WORKER_SLOT_VARIABLE = 'CONCORD_GATEWAY_WORKER_SLOT';

type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[];

/**
 * Gauges summed over workers would add up what is per process (a heap near its limit, an event
 * loop lag): each gets its worker's `worker` label, so the sum keeps them apart. Gauges that say
 * how they combine (the Node version, the build: 'first'; start times: 'omit') keep that.
 */
function labelGauges(metrics: WorkerMetrics, worker: number): WorkerMetrics {
  return metrics.map((metric) =>
    // The type is 'gauge' at run time (prom-client's typings declare a numeric enum).
    String(metric.type) === 'gauge' && (metric.aggregator ?? 'sum') === 'sum'
      ? { ...metric, values: metric.values.map((value) => ({ ...value, labels: { ...value.labels, worker: String(worker) } })) }
      : metric,
  );
}

type WorkerMessage =
  | { concord: 'scrape'; id: number; metrics: WorkerMetrics | null }
  | { concord: 'metrics'; id: number; text?: string; error?: string }
  | undefined;

/** In a worker: what connects it to the primary. */
export function workerLink(registry: Registry, _logger: Logger) {
  const pending = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>();
  let nextId = 0;
  process.on('message', (message: WorkerMessage) => {
    if (message?.concord === 'scrape') {
      const id = message.id;
      registry.getMetricsAsJSON().then(
        (metrics) => process.send?.({ concord: 'scrape', id, metrics }),
        () => process.send?.({ concord: 'scrape', id, metrics: null }),
      );
    } else if (message?.concord === 'metrics') {
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      if (message.text !== undefined) waiter?.resolve(message.text);
      else waiter?.reject(new Error(message.error ?? 'no answer'));
    }
  });
  /** Asks the primary, which answers with the same id within 5 s. */
  const ask = (what: string, message: Record<string, unknown>): Promise<string> => {
    const id = nextId++;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the primary did not answer for ${what} within 5 s`));
      }, 5_000);
      pending.set(id, {
        resolve: (text) => (clearTimeout(timer), resolve(text)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      });
      process.send?.({ ...message, id });
    });
  };
  return {
    /** The whole gateway's metrics, summed over the workers by the primary. */
    metrics(): Promise<string> {
      return ask('metrics', { concord: 'metrics' });
    },
  };
}
