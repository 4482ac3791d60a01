// Baselines of the proxy scenario: the gateway's own upstream executor on undici.Pool (behind node:http) or on the native relay (behind the gateway's front end), with no auth, routing or framework; optionally adding fixed headers.
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { FrontEnd, type FrontRequest, type FrontResponse, frontEndAvailable } from '../../services/gateway/src/front-h1.ts';
// The gateway's executor itself, so "auth work" over the native one = the gateway minus exactly this (same client, same relay code).
import type { ProxyAnswer } from '../../services/gateway/src/answers.ts';
import type { ProviderRuntime } from '../../services/gateway/src/provider-runtime.ts';
import { UpstreamPools, proxyHttp } from '../../services/gateway/src/upstream.ts';
import { HeaderBlock } from '../../services/gateway/src/upstream-h1.ts';

// argv[2]: the upstream origin, e.g. http://127.0.0.1:PORT; argv[3]: `undici` (a bare undici proxy, the
// issue's baseline) or `native` (the relay the gateway uses for plain HTTP); argv[4] (optional): JSON
// [[name, value], ...] of headers added to every upstream request (the identity headers the gateway sends for a session).
const origin = process.argv[2]!;
const client = process.argv[3];
if (client !== 'undici' && client !== 'native') throw new Error(`bare-proxy: client must be undici or native, not ${client}`);
const extra = JSON.parse(process.argv[4] ?? '[]') as Array<[string, string]>;
// Prepared once, as the gateway prepares a session's identity headers (both relays take it the same way).
const block = extra.length > 0 ? new HeaderBlock(extra.map(([name, value]): [string, string] => [name.toLowerCase(), value])) : undefined;
const pools = new UpstreamPools({ plainHttp: client });
if (client === 'native' && pools.plain === null) throw new Error('bare-proxy: the native relay is not available on this node');
const provider = { config: { internal_host_ssl_validation: true } } as ProviderRuntime;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

/** Relays one request: the client's headers less hop-by-hop ones, the prepared block, X-Forwarded-For. */
function relay(req: IncomingMessage | FrontRequest, res: ServerResponse | FrontResponse): void {
  const headers: Record<string, string | string[]> = {};
  for (const name in req.headers) {
    const v = req.headers[name];
    if (v !== undefined && !HOP_BY_HOP.has(name) && !block?.names.has(name)) headers[name] = v;
  }
  if (!block?.names.has('x-forwarded-for')) headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
  headers.host = req.headers.host ?? '';
  const answer: ProxyAnswer = { kind: 'proxy', provider, origin, path: req.url ?? '/', headers, block };
  proxyHttp(pools, answer, req, res);
}

const server = createServer(relay);
server.keepAliveTimeout = 65_000;
// The native baseline reads requests as the gateway does (its front end, the same settings), so "auth
// work alone" is the gateway minus exactly its auth; the bare undici proxy stays plain node:http, the
// issue's baseline. Requests the front end does not take go to node's server, as in the gateway.
if (client === 'native') {
  if (!frontEndAvailable) throw new Error("bare-proxy: the gateway's front end is not available on this node");
  new FrontEnd(server, relay, () => true);
}
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`READY ${JSON.stringify({ port })}\n`);
});
process.on('SIGTERM', () => server.close(() => pools.close().then(() => process.exit(0))));
