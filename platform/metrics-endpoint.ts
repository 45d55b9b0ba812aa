import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ConfigError } from './config.ts';

/**
 * Where a service serves GET /metrics: on a port of its own (`port`, not the API's), or on the
 * API port (`port: null`); with `token`, only to a scrape sending `Authorization: Bearer <token>`.
 */
export interface MetricsEndpoint {
  readonly port: number | null;
  readonly token: string | null;
}

/** The shared secret a scrape sends (METRICS_TOKEN): long enough not to be guessed. */
export const metricsToken = z
  .string()
  .min(16, 'must be at least 16 characters')
  .optional()
  .describe(
    '`GET /metrics` only with `Authorization: Bearer <token>` (at least 16 characters). In production, without a token or a metrics port, /metrics moves to its own port.',
  );
/** A metrics port; 0 asks the system for a free one. Unset: see metricsEndpointOf. */
export const metricsPort = z.coerce
  .number({ error: 'must be a port number' })
  .int('must be a whole number')
  .min(0, 'must be between 0 and 65535')
  .max(65535, 'must be between 0 and 65535')
  .optional();

/**
 * The endpoint from <portVariable> and METRICS_TOKEN. Without either, development keeps /metrics
 * on the API port, open; production serves it on `productionPort`, off the public API port.
 */
export function metricsEndpointOf(options: {
  port: number | undefined;
  token: string | undefined;
  production: boolean;
  productionPort: number;
  portVariable: string;
  apiPort: number;
  apiPortVariable: string;
}): MetricsEndpoint {
  const chosen = options.port ?? (options.production && !options.token ? options.productionPort : null);
  if (chosen !== null && chosen !== 0 && chosen === options.apiPort)
    throw new ConfigError(
      `Invalid configuration:\n  ${options.portVariable}: must differ from ${options.apiPortVariable} (${options.apiPort})`,
    );
  return Object.freeze({ port: chosen, token: options.token ?? null });
}

/** True when a request may read /metrics: no token configured, or the right one sent. */
export function metricsAllowed(endpoint: MetricsEndpoint, authorization: string | undefined): boolean {
  if (endpoint.token === null) return true;
  const sent = Buffer.from(/^Bearer (.+)$/i.exec(authorization ?? '')?.[1] ?? '');
  const expected = Buffer.from(endpoint.token);
  return sent.length === expected.length && timingSafeEqual(sent, expected);
}

/** A server answering GET /metrics only, on the endpoint's own port. */
export async function startMetricsServer(
  endpoint: MetricsEndpoint & { port: number },
  host: string,
  metrics: () => Promise<{ contentType: string; text: string }>,
  onError: (error: unknown) => void,
): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('only GET /metrics is served here\n');
      return;
    }
    if (!metricsAllowed(endpoint, req.headers.authorization)) {
      res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': 'Bearer' }).end('send the metrics token\n');
      return;
    }
    metrics().then(
      ({ contentType, text }) => res.writeHead(200, { 'content-type': contentType }).end(text),
      (error: unknown) => {
        onError(error);
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(endpoint.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, port: (server.address() as AddressInfo).port };
}
