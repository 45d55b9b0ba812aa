import { ConfigError } from './config.ts';
import { startTracing, type Tracing } from './tracing.ts';

/** What runMain runs: a service that can stop, and how long it may take to. */
export interface Stoppable {
  stop(): Promise<void>;
  /** How long stop() lets requests in flight finish (its hard deadline is 5 s more). */
  readonly shutdownGraceMs?: number;
}

/** What a stop may take beyond the grace (closing connectors and stores) before the process is ended anyway. */
export const STOP_MARGIN_MS = 5_000;

/**
 * Runs a service as the process's main program: a configuration error stops start-up with its
 * message (naming the variable) and exit code 78 (EX_CONFIG), any other start-up failure with
 * exit code 1. SIGINT/SIGTERM stop it gracefully (exit code 0); a stop that outlasts its grace by
 * more than five seconds ends the process with exit code 1. Signals after the first change
 * nothing: a terminal's Ctrl-C reaches a whole process group, whose parent (npm start, a cluster's
 * primary) then passes on a SIGTERM of its own. Traces are exported when the OTEL_* variables
 * ask for them (platform/tracing.ts), and flushed after the service has stopped.
 */
export function runMain(name: string, start: () => Promise<Stoppable>): void {
  let tracing: Tracing | null = null;
  // start() may throw before it returns a promise (configuration is read first): same path.
  Promise.resolve()
    .then(async () => {
      tracing = await startTracing(name);
      return start();
    })
    .then(
      (service) => {
        let stopping = false;
        const shutdown = (signal: NodeJS.Signals) => {
          if (stopping) return;
          stopping = true;
          const limitMs = (service.shutdownGraceMs ?? 10_000) + STOP_MARGIN_MS;
          setTimeout(() => {
            console.error(`${name}: still stopping ${limitMs} ms after ${signal}; exiting`);
            process.exit(1);
          }, limitMs).unref();
          service.stop().then(
            async () => {
              await tracing?.shutdown();
              process.exit(0);
            },
            (error: unknown) => {
              console.error(`${name}: error while stopping after ${signal}:`, error);
              process.exit(1);
            },
          );
        };
        process.on('SIGINT', shutdown);
        process.on('SIGTERM', shutdown);
      },
      (error: unknown) => {
        if (error instanceof ConfigError) {
          console.error(`${name}: ${error.message}`);
          process.exit(78);
        }
        console.error(`${name}: failed to start:`, error);
        process.exit(1);
      },
    );
}
