import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { currentScope } from './request-context.ts';
import { traceFields } from './tracing.ts';

export type { Logger };

/**
 * The logger audit events go to: at least at info level whatever LOG_LEVEL says (an operator
 * quietening the service must not silence its audit trail); silent stays silent (tests).
 */
export function auditLogger(logger: Logger): Logger {
  return logger.level === 'silent' ? logger : logger.child({}, { level: 'info' });
}

/**
 * The service's root logger: JSON lines, each stamped with the service name and, inside a
 * request, its correlation id and (with tracing on) its trace and span ids. Credentials never
 * reach the log.
 */
export function createLogger(service: string, level: LevelWithSilent = 'info', destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service },
    messageKey: 'msg',
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin() {
      const scope = currentScope();
      const ids = traceFields();
      return scope ? { correlationId: scope.correlationId, ...ids } : ids;
    },
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'authorization', '*.accessToken', '*.password'],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** Resolves once what the logger has been given is written (at most 1 s). */
export function flushed(logger: Logger): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    logger.flush(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
