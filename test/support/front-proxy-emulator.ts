// A small front proxy that behaves like nginx auth_request, Traefik forwardAuth, Caddy forward_auth or
// Envoy ext_authz towards Portcullis (for flavours with no real server in the test run).
import { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';

export type Flavour = 'nginx' | 'traefik' | 'caddy' | 'envoy';

/** A running emulator; `flavour` can be switched between tests. */
export interface FrontProxyEmulator {
  port: number;
  flavour: Flavour;
  close(): Promise<void>;
}

const IDENTITY_PREFIX = 'x-authentik-';

function pick(headers: IncomingHttpHeaders, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const v = headers[n];
    if (typeof v === 'string') out[n] = v;
  }
  return out;
}

/** Starts an emulator on a loopback port (free one by default) in front of `portcullis` (origin) and `upstream` (origin). */
export async function startFrontProxyEmulator(opts: { portcullis: string; upstream: string; flavour: Flavour; port?: number }): Promise<FrontProxyEmulator> {
  const state = { flavour: opts.flavour };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`emulator error: ${err.message}`);
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const host = req.headers.host ?? '';
    const target = req.url ?? '/';
    const body = await readBody(req);
    const common = { ...pick(req.headers, ['cookie', 'user-agent', 'accept']), 'x-forwarded-for': '203.0.113.50' };
    // The outpost's own paths go to Portcullis without an auth check.
    if (target.startsWith('/outpost.goauthentik.io/')) {
      const r = await request(`${opts.portcullis}${target}`, {
        method: req.method as 'GET',
        headers: { ...common, host, 'x-forwarded-proto': 'http', 'x-forwarded-host': host, 'x-original-url': `http://${host}${target}` },
        body: body.length > 0 ? body : null,
      });
      return relay(r, res);
    }
    const check = await request(authUrl(state.flavour, target), {
      method: 'GET',
      headers: authHeaders(state.flavour, host, target, common),
    });
    const checkBody = await check.body.text();
    if (check.statusCode >= 200 && check.statusCode < 300) {
      // Copy every identity header from the auth answer, overwriting what the client sent.
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === 'string' && !k.startsWith(IDENTITY_PREFIX) && k !== 'connection' && k !== 'content-length') headers[k] = v;
      }
      for (const [k, v] of Object.entries(check.headers)) {
        if (k.startsWith(IDENTITY_PREFIX) && typeof v === 'string') headers[k] = v;
      }
      const up = await request(`${opts.upstream}${target}`, { method: req.method as 'GET', headers, body: body.length > 0 ? body : null });
      return relay(up, res);
    }
    if (state.flavour === 'nginx' && check.statusCode === 401) {
      // error_page 401 = @goauthentik_proxy_signin → /outpost.goauthentik.io/start?rd=$scheme://$http_host$request_uri
      res.writeHead(302, { location: `/outpost.goauthentik.io/start?rd=${encodeURIComponent(`http://${host}${target}`)}` }).end();
      return;
    }
    const headers: Record<string, string | string[]> = {};
    for (const name of ['location', 'set-cookie', 'content-type']) {
      const v = check.headers[name];
      if (v !== undefined) headers[name] = v as string | string[];
    }
    res.writeHead(state.flavour === 'nginx' ? 500 : check.statusCode, headers).end(checkBody);
  }

  function authUrl(flavour: Flavour, target: string): string {
    if (flavour === 'envoy') return `${opts.portcullis}/outpost.goauthentik.io/auth/envoy${target}`;
    return `${opts.portcullis}/outpost.goauthentik.io/auth/${flavour}`;
  }

  function authHeaders(flavour: Flavour, host: string, target: string, common: Record<string, string>): Record<string, string> {
    switch (flavour) {
      case 'nginx':
        return { ...common, host, 'x-original-uri': target, 'x-forwarded-proto': 'http', 'x-forwarded-host': host };
      case 'traefik':
      case 'caddy':
        return { ...common, host: 'portcullis.internal', 'x-forwarded-proto': 'http', 'x-forwarded-host': host, 'x-forwarded-uri': target, 'x-forwarded-method': 'GET' };
      case 'envoy':
        return { ...common, host };
    }
  }

  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get flavour() {
      return state.flavour;
    },
    set flavour(f: Flavour) {
      state.flavour = f;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function relay(r: Awaited<ReturnType<typeof request>>, res: ServerResponse): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(r.headers)) {
    if (v !== undefined && k !== 'connection' && k !== 'transfer-encoding' && k !== 'keep-alive') headers[k] = v as string | string[];
  }
  const body = Buffer.from(await r.body.arrayBuffer());
  headers['content-length'] = String(body.length);
  res.writeHead(r.statusCode, headers).end(body);
}
