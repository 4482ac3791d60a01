// A demo/test upstream: echoes requests as JSON or HTML, streams chunks, answers any status, echoes WebSocket frames.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { closeServer, listen } from './http-server.ts';
import { createSelfSignedCertificate } from './self-signed-certificate.ts';
import { type EchoedRequest, renderUpstreamPage } from './upstream-page.ts';
import { acceptWebSocketEcho } from './websocket-echo.ts';

/** Options of {@link startUpstream}. */
export interface StartUpstreamOptions {
  /** Default 0: any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Serve https with a freshly generated self-signed certificate (CN localhost). Default false. */
  tls?: boolean;
  /** Reported in every echo and in the `x-upstream-name` response header. Default "upstream". */
  name?: string;
}

/** A running upstream. */
export interface Upstream {
  /** Base URL, e.g. `http://127.0.0.1:PORT` (no trailing slash). */
  url: string;
  port: number;
  /** HTTP requests received so far, WebSocket upgrades included. */
  readonly requests: number;
  /** The PEM certificate when `tls` is on, for clients that want to verify it. */
  certificate?: string;
  close(): Promise<void>;
}

/**
 * Starts an upstream that behaves as follows:
 * - `GET /__stream?chunks=N&delay=MS`: a chunked text/plain response of N lines, one every MS ms (defaults 3 and 50).
 * - `/__status/<code>`: that status (200–599) with a small JSON body.
 * - a WebSocket upgrade on any path: echoes every message; the text message `__request` is answered
 *   with the JSON echo of the upgrade request (to check headers a proxy added).
 * - anything else: 200 with the {@link EchoedRequest} as JSON, or as an HTML page when `Accept` names text/html.
 */
export async function startUpstream(opts: StartUpstreamOptions = {}): Promise<Upstream> {
  const name = opts.name ?? 'upstream';
  let requests = 0;
  const certificate = opts.tls ? createSelfSignedCertificate() : undefined;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    requests += 1;
    res.setHeader('x-upstream-name', name);
    handleRequest(req, res, name).catch(() => res.destroy());
  };
  const server: Server = certificate ? createHttpsServer(certificate, handler) : createHttpServer(handler);
  server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    requests += 1;
    acceptWebSocketEcho(req, socket, head, {
      headers: { 'x-upstream-name': name },
      describeRequest: () => JSON.stringify(echoOf(req, name, '')),
    });
  });
  const host = opts.host ?? '127.0.0.1';
  const port = await listen(server, opts.port ?? 0, host);
  const urlHost = host.includes(':') ? `[${host}]` : host;

  const upstream: Upstream = {
    url: `${certificate ? 'https' : 'http'}://${urlHost}:${port}`,
    port,
    get requests() {
      return requests;
    },
    close: () => closeServer(server),
  };
  if (certificate) upstream.certificate = certificate.cert;
  return upstream;
}

async function handleRequest(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
  const target = new URL(req.url ?? '/', 'http://upstream.invalid');

  if (target.pathname === '/__stream') {
    streamChunks(res, boundedInt(target.searchParams.get('chunks'), 3, 0, 1000), boundedInt(target.searchParams.get('delay'), 50, 0, 10_000));
    return;
  }

  const statusMatch = /^\/__status\/(\d{3})$/.exec(target.pathname);
  if (statusMatch) {
    const status = Number(statusMatch[1]);
    if (status < 200 || status > 599) {
      sendJson(res, 400, { name, error: `status ${status} is not between 200 and 599` });
      return;
    }
    // These statuses must not carry a body (RFC 9110).
    if (status === 204 || status === 304) {
      res.statusCode = status;
      res.end();
      return;
    }
    sendJson(res, status, { name, status });
    return;
  }

  const echo = echoOf(req, name, await readText(req));
  if (/\btext\/html\b/i.test(req.headers.accept ?? '')) {
    res.statusCode = 200;
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(renderUpstreamPage(echo));
    return;
  }
  sendJson(res, 200, echo);
}

function echoOf(req: IncomingMessage, name: string, body: string): EchoedRequest {
  const headers: Record<string, string | string[]> = {};
  // rawHeaders keeps duplicates apart: a proxy that forwards a spoofed X-authentik-* header next to its own shows up as an array.
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const key = (req.rawHeaders[i] ?? '').toLowerCase();
    const value = req.rawHeaders[i + 1] ?? '';
    const existing = headers[key];
    headers[key] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return { name, method: req.method ?? 'GET', url: req.url ?? '', headers, body };
}

function streamChunks(res: ServerResponse, chunks: number, delayMs: number): void {
  res.statusCode = 200;
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  // Send headers now so a proxy that buffers is visible as a delay before the first byte.
  res.flushHeaders();
  let sent = 0;
  let timer: NodeJS.Timeout | undefined;
  const next = () => {
    if (sent >= chunks) {
      res.end();
      return;
    }
    res.write(`chunk ${sent}\n`);
    sent += 1;
    timer = setTimeout(next, delayMs);
  };
  res.on('close', () => clearTimeout(timer));
  timer = setTimeout(next, delayMs);
}

function boundedInt(raw: string | null, fallback: number, min: number, max: number): number {
  const n = raw === null ? Number.NaN : Number.parseInt(raw, 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(value));
}

async function readText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
