// Baseline of the proxy scenario: node:http + the gateway's own upstream executor (undici.Pool, keep-alive, same settings), with no auth, routing or framework; optionally adding fixed headers.
import { createServer } from 'node:http';
// The gateway's executor itself, so "auth work" = the gateway minus exactly this (same undici, same relay code).
import type { ProxyAnswer } from '../../services/gateway/src/answers.ts';
import type { ProviderRuntime } from '../../services/gateway/src/provider-runtime.ts';
import { UpstreamPools, proxyHttp } from '../../services/gateway/src/upstream.ts';

// argv[2]: the upstream origin, e.g. http://127.0.0.1:PORT; argv[3] (optional): JSON [[name, value], ...]
// of headers added to every upstream request (the identity headers the gateway sends for a session).
const origin = process.argv[2]!;
const extra = JSON.parse(process.argv[3] ?? '[]') as Array<[string, string]>;
const pools = new UpstreamPools();
const provider = { config: { internal_host_ssl_validation: true } } as ProviderRuntime;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

const server = createServer((req, res) => {
  const headers: Record<string, string | string[]> = {};
  for (const name in req.headers) {
    const v = req.headers[name];
    if (v !== undefined && !HOP_BY_HOP.has(name)) headers[name] = v;
  }
  headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
  for (const [name, value] of extra) headers[name] = value;
  headers.host = req.headers.host ?? '';
  const answer: ProxyAnswer = { kind: 'proxy', provider, origin, path: req.url ?? '/', headers };
  proxyHttp(pools, answer, req, res);
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`READY ${JSON.stringify({ port })}\n`);
});
process.on('SIGTERM', () => server.close(() => pools.close().then(() => process.exit(0))));
