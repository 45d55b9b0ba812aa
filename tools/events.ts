import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { configuredEnv } from '../platform/config-file.ts';
import { z } from 'zod';
import { ConfigError, dataDir, readEnv } from '../platform/config.ts';
import type { EventBroker, StoredEvent } from '../platform/events/broker.ts';
import { loadEventsConfig, openBroker } from '../platform/events/config.ts';
import { createLogger } from '../platform/logger.ts';

const HELP = `Usage:
  npm run events -- tail [--type <type>] [--since <time>] [--limit <n>] [--no-follow] [--json]
  npm run events -- replay --since <time> | --after <position> [--type <type>] [--consumer <name>] [--json]
  npm run events -- consumers

The canonical events on the broker the services use (EVENT_BROKER: the embedded log in
$DATA_DIR/events.sqlite, or NATS JetStream at NATS_URL).
  tail       the latest events (the last --limit, 20, or those since --since), then each new one
             as it is published, until Ctrl-C (--no-follow: stop after the stored ones)
  replay     the events stored since --since (an ISO time, or 15m / 2h / 1d ago), or after
             --after (a position --json prints: the embedded log's number, or <stream>:<sequence>
             on NATS); with --consumer, moves that durable consumer back there instead, so it
             applies them again (a gateway replica: gateway-<GATEWAY_REPLICA>)
  consumers  each durable consumer and the events it has not yet acknowledged (its lag)
--type takes a type (concord.case.updated) or a prefix (concord.case.*); repeat it for several.`;

/** `15m`, `2h`, `1d` ago, or an ISO time. */
export function parseSince(text: string, now = Date.now()): Date | null {
  const relative = /^(\d+)(s|m|h|d)$/.exec(text);
  if (relative) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now - Number(relative[1]) * unit);
  }
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : new Date(at);
}

export interface EventsCliOptions {
  /** A broker in place of the configured one (tests). */
  readonly broker?: EventBroker;
  /** Resolves when `tail` should stop following (Ctrl-C by default). */
  readonly until?: Promise<void>;
}

/** Runs one events command; resolves to the exit code (0 done, 2 usage, 78 configuration). */
export async function runEventsCli(
  argv: readonly string[],
  out: (line: string) => void = console.log,
  env: NodeJS.ProcessEnv = configuredEnv('processes'),
  options: EventsCliOptions = {},
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        type: { type: 'string', multiple: true },
        since: { type: 'string' },
        limit: { type: 'string', default: '20' },
        consumer: { type: 'string' },
        after: { type: 'string' },
        'no-follow': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    out(`${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command] = positionals;
  if (values.help || !command || !['tail', 'replay', 'consumers'].includes(command)) {
    out(command && !values.help ? `unknown command ${command}\n\n${HELP}` : HELP);
    return values.help ? 0 : 2;
  }
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) {
    out(`--limit must be a whole number above 0 (got ${values.limit})`);
    return 2;
  }
  const since = values.since === undefined ? undefined : parseSince(values.since);
  if (since === null) {
    out(`--since must be an ISO time or an age such as 15m, 2h, 1d (got ${values.since})`);
    return 2;
  }
  if (command === 'replay' && !since === (values.after === undefined)) {
    out(`replay needs --since or --after (one of them)\n\n${HELP}`);
    return 2;
  }
  const types = values.type?.length ? values.type : ['*'];
  let broker = options.broker;
  if (!broker) {
    try {
      const vars = readEnv(z.object({ DATA_DIR: dataDir }), env);
      broker = await openBroker(loadEventsConfig(env, vars.DATA_DIR), createLogger('events', 'warn'));
    } catch (error) {
      if (error instanceof ConfigError) {
        out(error.message);
        return 78;
      }
      throw error;
    }
  }
  const show = (stored: StoredEvent) => {
    const { event } = stored;
    out(
      values.json
        ? JSON.stringify(stored.position ? { position: stored.position, ...event } : event)
        : `${event.time}  ${event.type.padEnd(30)} ${event.subject.padEnd(28)} seq ${event.sequence.padStart(3)}  ${event.source}  ${JSON.stringify(event.data)}`,
    );
  };
  try {
    if (command === 'consumers') {
      const states = await broker.consumers();
      if (states.length === 0) out('no durable consumers');
      for (const state of states) out(`${state.name.padEnd(48)} ${String(state.pending).padStart(8)} not yet acknowledged`);
      return 0;
    }
    if (command === 'replay' && values.consumer) {
      await broker.rewind(values.consumer, types, since ? { time: since } : { after: values.after! });
      out(
        `${values.consumer} moved back to ${since ? since.toISOString() : `after ${values.after}`}: it applies the events since then again as it runs`,
      );
      return 0;
    }
    // Stored ones first: since the time or after the position, or the last `limit`.
    const from = since ? { since } : values.after !== undefined ? { after: values.after } : {};
    const stored = await broker.read({ types, ...from, limit: 'since' in from || 'after' in from ? 100_000 : 1_000_000 });
    const window = 'since' in from || 'after' in from;
    for (const entry of window ? stored.slice(0, command === 'replay' ? undefined : limit) : stored.slice(-limit)) show(entry);
    if (command === 'replay' || values['no-follow']) return 0;
    const seen = new Set(stored.map((entry) => entry.event.id));
    const stop = await broker.subscribe(types, (event) => {
      if (!seen.has(event.id)) show({ event, position: '' });
    });
    await (options.until ?? new Promise<void>((resolve) => process.once('SIGINT', () => resolve())));
    await stop();
    return 0;
  } finally {
    if (!options.broker) await broker.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runEventsCli(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
