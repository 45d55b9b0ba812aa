import { ConfigError } from './config.ts';

/**
 * Runs a service as the process's main program: a configuration error stops start-up with its
 * message (naming the variable) and exit code 78 (EX_CONFIG); SIGINT/SIGTERM stop it gracefully.
 */
export function runMain(name: string, start: () => Promise<{ stop(): Promise<void> }>): void {
  // start() may throw before it returns a promise (configuration is read first): same path.
  Promise.resolve()
    .then(start)
    .then(
      (service) => {
        let stopping = false;
        const shutdown = (signal: string) => {
          if (stopping) return;
          stopping = true;
          service.stop().then(
            () => process.exit(0),
            (error: unknown) => {
              console.error(`${name}: error while stopping after ${signal}:`, error);
              process.exit(1);
            },
          );
        };
        process.once('SIGINT', () => shutdown('SIGINT'));
        process.once('SIGTERM', () => shutdown('SIGTERM'));
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
