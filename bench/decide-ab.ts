// A/B of the forward-auth decision alone (no sockets, no HTTP): ns per decision for this tree and another checkout, in one process.
//   node --import tsx bench/decide-ab.ts [--compare ../other] [--rounds 15] [--per-round 200000]
// Each tree's gateway (embedded bus and store, one forward_single provider, a logged-in session) is loaded
// from its own files, so both run side by side; rounds alternate their order and the minimum per tree is
// reported, which a busy machine disturbs least. What it leaves out (node's HTTP server, the write that
// wakes the client) is what bench/cpu-per-request.ts measures.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { compare: { type: 'string' }, rounds: { type: 'string', default: '15' }, 'per-round': { type: 'string', default: '200000' } } });
const rounds = Number(values.rounds);
const perRound = Number(values['per-round']);
if (!(rounds > 0 && perRound > 0)) throw new Error('--rounds and --per-round must be positive numbers');

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
  const config = support.testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null }, trusted_proxy_cidrs: ["127.0.0.1/32"] }
providers:
${support.providerYaml({ name: 'fwd', mode: 'forward_single', external_host: 'http://fwd.localhost:9000', issuer: 'http://idp' })}
`);
  const gateway = await support.startTestGateway(config);
  const cookie: string = await gateway.login('fwd', { sub: 'alice', email: 'alice@example.com', preferred_username: 'alice', groups: ['a', 'b'] });
  const req = {
    method: 'GET',
    url: '/outpost.goauthentik.io/auth/nginx',
    headers: { host: 'fwd.localhost:9000', cookie, 'x-original-url': 'http://fwd.localhost:9000/private/page?x=1', 'user-agent': 'autocannon', connection: 'keep-alive' },
    peer: '127.0.0.1',
    encrypted: false,
  };
  const handler = gateway.gateway.handler;
  const first = await handler.decide(req);
  if (first.kind !== 'respond' || first.status !== 200) throw new Error(`${name}: the bench session was not accepted (${first.kind} ${first.status ?? ''})`);
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
for (const [name, ns] of best) console.log(`${name.padEnd(40)} ${ns.toFixed(0)} ns per forward-auth decision (min of ${rounds} rounds)`);
for (const s of subjects) await s.close();
