// Experiment: do gateway workers (outpost.workers, node:cluster) pay on this machine? Same-run throughput of 1 process vs N workers, against the bench baselines.
//
//   node --import tsx bench/cluster-experiment.ts [--workers N] [--duration S] [--rounds R]
//
// Starts the bench cluster (NATS ×3, Redis, IdP, upstream, session + auth + 1 gateway), a second
// gateway process with `outpost.workers: N` (N workers sharing its port), the
// bare node:http forward-auth server, nginx and the bare undici proxy; then compares, alternating
// per round: forward auth (bare vs 1 process vs N workers) and proxy mode, small body (nginx,
// undici proxy, 1 process, N workers). Prints req/s, p99 and the ratios.
import { startEnvironment } from './lib/environment.ts';
import { type LoadTarget, compare, ratio } from './lib/load.ts';
import { startBenchNginx } from './lib/nginx.ts';
import { toolArgs } from './lib/options.ts';
import { type BenchChild, cpuSeconds, processTree, startHelper } from './lib/processes.ts';
import { gatewayIdentity, prepareHttpFixtures } from './scenarios/http-decisions.ts';

const args = toolArgs(
  {
    workers: { type: 'string', default: '2' },
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    connections: { type: 'string', default: '100' },
  },
  'usage: node --import tsx bench/cluster-experiment.ts [--workers N] [--duration S] [--rounds R] [--connections C]',
  ['workers', 'duration', 'rounds', 'connections'],
);
const log = (msg: string) => process.stdout.write(`${msg}\n`);
const settings = { duration: Number(args.duration), warmup: 2, rounds: Number(args.rounds), connections: Number(args.connections) };

async function main(): Promise<void> {
  log('starting NATS (3 nodes), Redis, IdP, upstream, session + auth + 1 gateway ...');
  const env = await startEnvironment({ gateways: 1 });
  const fx = await prepareHttpFixtures(env);
  const children: BenchChild[] = [];
  try {
    const workers = await env.startMember('gateway', { env: { PORTCULLIS_OUTPOST__WORKERS: args.workers } });
    const port = workers.http;
    const pids = processTree(workers.proc.pid);
    const fwd = fx.forwardAuth(env.gatewayPort);
    const identity = await gatewayIdentity(env, fx);
    const bare = await startHelper('bare-auth', 'servers/bare-auth.ts', [JSON.stringify(identity)]);
    const undiciProxy = await startHelper('undici-proxy', 'servers/bare-proxy.ts', [`http://127.0.0.1:${env.upstream.port}`, 'undici']);
    const nginx = await startBenchNginx(env.upstream.port);
    children.push(bare, undiciProxy);
    try {
      const gw = env.gateways()[0]!;
      const cpu = () => ({ one: cpuSeconds(gw.proc.pid), cluster: pids.reduce((a, p) => a + cpuSeconds(p), 0) });
      const bareT: LoadTarget = { ...fwd, label: 'bare node:http', url: `http://127.0.0.1:${(bare.ready as { port: number }).port}/outpost.goauthentik.io/auth/nginx` };
      const oneT: LoadTarget = { ...fx.forwardAuth(gw.http), label: 'gateway, 1 process' };
      const clusterT: LoadTarget = { ...fx.forwardAuth(port), label: `gateway, ${args.workers} workers` };
      log('forward auth, valid session');
      const c0 = cpu();
      const [b, one, many] = await compare([bareT, oneT, clusterT], settings, log);
      const c1 = cpu();
      log(`  1 process / bare: ${ratio(one!, b!).toFixed(2)}   ${args.workers} workers / bare: ${ratio(many!, b!).toFixed(2)}   p99 ${one!.latency.p99} / ${many!.latency.p99} ms`);
      log(`  gateway CPU s during the runs: 1 process ${(c1.one - c0.one).toFixed(1)}, workers ${(c1.cluster - c0.cluster).toFixed(1)}`);

      const app = { host: env.appHost, cookie: fx.appCookie };
      const at = (label: string, p: number): LoadTarget => ({ label, url: `http://127.0.0.1:${p}/small`, headers: app, expectStatus: 200 });
      log('proxy, small body');
      const [n, u, pOne, pMany] = await compare(
        [at('nginx proxy_pass', nginx.port), at('node:http + undici.Pool', (undiciProxy.ready as { port: number }).port), at('gateway, 1 process', gw.http), at(`gateway, ${args.workers} workers`, port)],
        settings,
        log,
      );
      log(
        `  vs nginx: 1 process ${ratio(pOne!, n!).toFixed(2)}, ${args.workers} workers ${ratio(pMany!, n!).toFixed(2)};  vs undici proxy: 1 process ${ratio(pOne!, u!).toFixed(2)}, ${args.workers} workers ${ratio(pMany!, u!).toFixed(2)}`,
      );
    } finally {
      await nginx.stop();
    }
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await fx.close();
    await env.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`cluster-experiment failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
