// A/B of the gateway's decision alone (no sockets, no HTTP): ns per decision for this tree and another checkout, in one process.
//   node --import tsx bench/decide-ab.ts [--mode fwd|proxy] [--compare ../other] [--rounds 15] [--per-round 200000]
// `fwd` (default): a forward-auth check with a valid session; `proxy`: a proxy-mode request with one, up
// to the relay's request (what is sent upstream is decided; nothing is sent).
// Each tree's gateway (embedded bus and store, one provider of that mode, a logged-in session) is loaded
// from its own files, so both run side by side; rounds alternate their order and the minimum per tree is
// reported, which a busy machine disturbs least. What it leaves out (node's HTTP server, the write that
// wakes the client) is what bench/cpu-per-request.ts measures.
import { resolve } from 'node:path';
import { toolArgs } from './lib/options.ts';

const values = toolArgs(
  { mode: { type: 'string', default: 'fwd' }, compare: { type: 'string' }, rounds: { type: 'string', default: '15' }, 'per-round': { type: 'string', default: '200000' } },
  'usage: node --import tsx bench/decide-ab.ts [--mode fwd|proxy] [--compare ../other] [--rounds 15] [--per-round 200000]',
  ['rounds', 'per-round'],
);
const rounds = Number(values.rounds);
const perRound = Number(values['per-round']);
const mode = values.mode;
if (mode !== 'fwd' && mode !== 'proxy') throw new Error(`--mode must be fwd or proxy, not ${mode}`);

const ROOT = resolve(import.meta.dirname, '..');
const trees: Array<[string, string]> = [['this tree', ROOT]];
if (values.compare) trees.push([`compare: ${values.compare}`, resolve(values.compare)]);

interface Subject {
  name: string;
  run(n: number): void;
  close(): Promise<void>;
}

const subjects: Subject[] = [];
for (const [name, root] of trees) {
  const support = await import(`${root}/services/gateway/src/test-support.ts`);
  const provider =
    mode === 'fwd'
      ? { name: 'fwd', mode: 'forward_single', external_host: 'http://fwd.localhost:9000', issuer: 'http://idp' }
      : { name: 'app', mode: 'proxy', external_host: 'http://app.localhost:9000', internal_host: 'http://127.0.0.1:1', issuer: 'http://idp' };
  const config = support.testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null }, trusted_proxy_cidrs: ["127.0.0.1/32"] }
providers:
${support.providerYaml(provider)}
`);
  const gateway = await support.startTestGateway(config);
  const cookie: string = await gateway.login(provider.name, { sub: 'alice', email: 'alice@example.com', preferred_username: 'alice', groups: ['a', 'b'] });
  // The headers autocannon sends in bench/cpu-per-request.ts, with the session's cookie.
  const common = { cookie, 'user-agent': 'autocannon', connection: 'keep-alive' };
  const req =
    mode === 'fwd'
      ? {
          method: 'GET',
          url: '/outpost.goauthentik.io/auth/nginx',
          headers: { host: 'fwd.localhost:9000', ...common, 'x-original-url': 'http://fwd.localhost:9000/private/page?x=1' },
          peer: '127.0.0.1',
          encrypted: false,
        }
      : { method: 'GET', url: '/small', headers: { host: 'app.localhost:9000', ...common }, peer: '127.0.0.1', encrypted: false };
  const handler = gateway.gateway.handler;
  const first = await handler.decide(req);
  const accepted = mode === 'fwd' ? first.kind === 'respond' && first.status === 200 : first.kind === 'proxy';
  if (!accepted) throw new Error(`${name}: the bench session was not accepted (${first.kind} ${first.status ?? ''})`);
  subjects.push({
    name,
    run(n) {
      for (let i = 0; i < n; i++) if (handler.decide(req) instanceof Promise) throw new Error(`${name}: a decision was not answered from memory`);
    },
    close: () => gateway.close(),
  });
}

const best = new Map<string, number>();
for (let r = 0; r < rounds; r++) {
  for (const s of r % 2 ? [...subjects].reverse() : subjects) {
    const started = process.hrtime.bigint();
    s.run(perRound);
    const ns = Number(process.hrtime.bigint() - started) / perRound;
    best.set(s.name, Math.min(best.get(s.name) ?? Number.POSITIVE_INFINITY, ns));
  }
}
for (const [name, ns] of best) console.log(`${name.padEnd(40)} ${ns.toFixed(0)} ns per ${mode === 'fwd' ? 'forward-auth' : 'proxy-mode'} decision (min of ${rounds} rounds)`);
for (const s of subjects) await s.close();
