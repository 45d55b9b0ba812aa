import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, readEnv } from '../config.ts';
import { tracedBroker } from './traced-broker.ts';
import type { Logger } from '../logger.ts';
import type { EventBroker } from './broker.ts';

/** Which broker the events go through: the embedded log (one machine) or NATS JetStream. */
export type EventsConfig =
  | { readonly kind: 'embedded'; readonly file: string; readonly retentionMs: number }
  | { readonly kind: 'nats'; readonly servers: readonly string[]; readonly streamMaxAgeMs: number; readonly replicas: number };

export const eventsEnvSchema = z.object({
  EVENT_BROKER: z
    .enum(['embedded', 'nats'], { error: 'must be embedded or nats' })
    .default('embedded')
    .describe(
      'Where canonical events go: `embedded` (a log in a SQLite file shared by the services on this machine, `EVENTS_DATABASE`) or `nats` (NATS JetStream at `NATS_URL`, a durable stream per domain). Required in production, where the embedded broker is never a silent default.',
    ),
  EVENTS_DATABASE: z.string().min(1).optional().meta({
    description: "The embedded broker's file; every service on the machine must name the same one.",
    defaultText: '`DATA_DIR/events.sqlite`',
  }),
  EVENTS_RETENTION_HOURS: z.coerce
    .number({ error: 'must be a number of hours' })
    .positive('must be above 0')
    .default(168)
    .describe('How long events are kept for consumers that were away and for replays (both brokers).'),
  NATS_URL: z
    .string()
    .regex(/^(nats|tls):\/\/[^\s,]+(,(nats|tls):\/\/[^\s,]+)*$/, 'must be nats://host:port (comma-separated for a cluster)')
    .default('nats://127.0.0.1:4222')
    .describe('The NATS servers (with JetStream enabled), comma-separated, when `EVENT_BROKER=nats`.'),
  NATS_STREAM_REPLICAS: z.coerce
    .number({ error: 'must be 1, 3 or 5' })
    .int('must be 1, 3 or 5')
    .min(1, 'must be 1, 3 or 5')
    .max(5, 'must be 1, 3 or 5')
    .refine((value) => [1, 3, 5].includes(value), 'must be 1, 3 or 5')
    .default(1)
    .describe("Copies of each domain's stream kept by a NATS cluster (1 for a single server)."),
});

/** Every variable the broker settings read, for the configuration reference. */
export function eventsVariables() {
  return eventsEnvSchema;
}

export function loadEventsConfig(env: NodeJS.ProcessEnv, dataDir: string, production = false): EventsConfig {
  const vars = readEnv(eventsEnvSchema, env);
  const retentionMs = vars.EVENTS_RETENTION_HOURS * 3_600_000;
  if (production && !env.EVENT_BROKER)
    throw new ConfigError(
      'Invalid configuration:\n  EVENT_BROKER: required when CONCORD_ENV=production (nats; embedded serves only services on one machine)',
    );
  if (vars.EVENT_BROKER === 'nats')
    return Object.freeze({
      kind: 'nats',
      servers: vars.NATS_URL.split(','),
      streamMaxAgeMs: retentionMs,
      replicas: vars.NATS_STREAM_REPLICAS,
    });
  return Object.freeze({ kind: 'embedded', file: vars.EVENTS_DATABASE ?? join(dataDir, 'events.sqlite'), retentionMs });
}

/** Opens the configured broker (NATS: connects, and makes the streams it lacks). */
export async function openBroker(config: EventsConfig, logger: Logger): Promise<EventBroker> {
  if (config.kind === 'nats') {
    const { natsBroker } = await import('./nats-broker.ts');
    return tracedBroker(
      await natsBroker({ servers: config.servers, logger, streamMaxAgeMs: config.streamMaxAgeMs, replicas: config.replicas }),
      'nats',
    );
  }
  const { embeddedBroker } = await import('./embedded-broker.ts');
  return tracedBroker(await embeddedBroker({ file: config.file, logger, retentionMs: config.retentionMs }), 'concord-embedded');
}

/**
 * `<PREFIX>_FEED_POLL_MS`: how often a subgraph reads its embedded system's change log
 * (platform/events/sqlite-change-log.ts), which bounds how long a change waits for its event.
 */
export function feedPollMs(system: string) {
  return z.coerce
    .number({ error: 'must be a number of milliseconds' })
    .int('must be a whole number of milliseconds')
    .min(10, 'must be at least 10')
    .max(60_000, 'must be at most 60000')
    .default(100)
    .describe(
      `How often the embedded ${system}'s change log is read, in ms: the longest a change to its file waits before its event is published. Embedded connector only.`,
    );
}
