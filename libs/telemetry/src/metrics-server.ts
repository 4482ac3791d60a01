// The :9300 listener every process serves: GET /metrics and /outpost.goauthentik.io/ping.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

/** What `/ready` reports: ready or not, and the state of each dependency for the operator. */
export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
}

/**
 * Starts the metrics listener on `host:port`; resolves once bound. Serves `/metrics`,
 * `/outpost.goauthentik.io/ping` (liveness: 204 while the process runs) and `/ready` (readiness:
 * 200 or 503 with a JSON body naming each dependency's state).
 */
export async function startMetricsServer(opts: { host: string; port: number; registry: Registry; readiness?: () => Promise<Readiness> }): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path.startsWith('/outpost.goauthentik.io/ping')) {
      res.writeHead(204).end();
      return;
    }
    if (path === '/ready') {
      const check = opts.readiness ?? (async (): Promise<Readiness> => ({ ready: true, checks: {} }));
      check().then(
        (r) => res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status: r.ready ? 'ready' : 'not ready', ...r.checks })}\n`),
        (err: Error) => res.writeHead(503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status: 'not ready', error: err.message })}\n`),
      );
      return;
    }
    if (path === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
      opts.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': opts.registry.contentType }).end(body),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics unavailable: ${err.message}\n`),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
