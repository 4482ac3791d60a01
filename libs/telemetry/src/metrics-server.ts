// The :9300 listener every process serves: GET /metrics, /outpost.goauthentik.io/ping and /ready.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

/** What `/ready` reports: ready or not, and the state of each dependency for the operator. */
export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
}

/**
 * What `/ready` is asked about: `all` (the default: the process's listeners and every dependency,
 * for load balancers and readiness probes) or `listeners` (`?scope=listeners`: only the process's own
 * listeners, bound and not stopping — for a container health check, which some orchestrators act on
 * by restarting, which would not bring back a dependency).
 */
export type ReadinessScope = 'all' | 'listeners';

const SCOPES: Record<string, ReadinessScope> = { all: 'all', listeners: 'listeners' };

/**
 * Starts the metrics listener on `host:port`; resolves once bound. Serves `/metrics`,
 * `/outpost.goauthentik.io/ping` (liveness: 204 while the process runs, as authentik's) and `/ready`
 * (readiness: 200 or 503 with a JSON body naming each state; see {@link ReadinessScope}).
 */
export async function startMetricsServer(opts: {
  host: string;
  port: number;
  /** A registry, or anything serving metrics text as one does (the primary of gateway workers: theirs, summed). */
  registry: Pick<Registry, 'metrics' | 'contentType'>;
  readiness?: (scope: ReadinessScope) => Promise<Readiness>;
}): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path.startsWith('/outpost.goauthentik.io/ping')) {
      res.writeHead(204).end();
      return;
    }
    if (path === '/ready') {
      const asked = new URL(req.url ?? '/', 'http://x').searchParams.get('scope') ?? 'all';
      const scope = SCOPES[asked];
      if (!scope) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`scope "${asked}" is not known: use /ready or /ready?scope=listeners\n`);
        return;
      }
      const check = opts.readiness ?? (async (): Promise<Readiness> => ({ ready: true, checks: {} }));
      check(scope).then(
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
