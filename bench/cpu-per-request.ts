// Per-request CPU of the gateway and its baselines (µs of process CPU per answered request), robust to a busy machine; A/B of two source trees; CPU profiles.
//
//   node --import tsx bench/cpu-per-request.ts [--requests N] [--rounds R] [--only fwd,proxy-small,...]
//        [--compare DIR [--compare-node-args "FLAGS"]] [--profile] [--keep-profiles DIR] [--syscalls] [--perf [--perf-keep DIR]] [--json FILE]
//
// Wall-clock throughput on a shared 2-core machine drifts with other jobs; the CPU a server process
// spends per request drifts much less. For each workload: warm up, then drive exactly N requests
// (autocannon `amount`) and read the server's user+system CPU from /proc before and after (and, beside
// it, the bench upstream's and this process's own, the load generator's); R rounds, median reported.
// The nginx workloads (`nginx-small`, `nginx-id-small`, `nginx-64k`, `nginx-64k-buffers`) run scenario 2's nginx,
// measured on its worker. `--compare DIR` also starts a gateway from another checkout (DIR, with its own
// node_modules) in the same cluster and alternates the two in every round, so a change is judged
// against its baseline under the same load; `--compare-node-args` starts that gateway with node flags
// (with `--compare .`, this tree with and without them, e.g. a V8 heap setting). `--profile` replays each gateway workload on a gateway
// run under `--cpu-prof` (one per tree) and prints the top self-time functions of the measured
// window (start-up and warm-up left out), in µs per request. `--syscalls` drives each workload once
// more per server under `strace -c -f` and prints its system calls per request (needs strace; the
// tracing slows the server, so only the counts mean something). `--perf` drives each workload once more
// per server under `perf record` (software cpu-clock sampling; Debian's linux-perf) and prints where
// its CPU went by binary (kernel, node, libc, JIT code ...) and the top native symbols, in µs per
// request: what node's own `--cpu-prof` cannot see (C++ inside node, the kernel, other threads);
// `--perf-keep DIR` records call graphs too and keeps each perf.data there.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon from 'autocannon';
import { getFreePort } from '@portcullis/testkit';
import { type ProfileSummary, type ProfileWindow, readProfile, summarizeProfile } from './lib/cpu-profile.ts';
import { buildFlameTree, renderFlameGraph } from './lib/flame-graph.ts';
import { type Environment, answersPing, startEnvironment } from './lib/environment.ts';
import type { LoadTarget } from './lib/load.ts';
import type { FrontProxy } from '../test/front-proxies/servers.ts';
import { IDENTITY_PREFIX, LARGE_BUFFERS_PREFIX, startBenchNginx } from './lib/nginx.ts';
import { toolArgs } from './lib/options.ts';
import { type BenchChild, ROOT, cpuSeconds, minorFaults, processTree, spawnChild, startHelper } from './lib/processes.ts';
import { checkNginxIdentity, gatewayIdentity, gatewayUpstreamHeaders, prepareHttpFixtures } from './scenarios/http-decisions.ts';

/** Every workload, in the order they run (`--only` picks some). */
const WORKLOAD_IDS = [
  'bare-auth', 'fwd', 'allow', 'redirect', 'nginx-small', 'nginx-id-small', 'undici-small', 'undici-id-small', 'native-id-small', 'proxy-small',
  'nginx-64k', 'nginx-64k-buffers', 'undici-64k', 'native-id-64k', 'proxy-64k', 'proxy-64k-chunked', 'proxy-small-chunked',
] as const;
const USAGE = `usage: node --import tsx bench/cpu-per-request.ts [--requests N] [--rounds R] [--connections C] [--only fwd,proxy-small,...]
       [--compare DIR [--compare-node-args "FLAGS"]] [--profile] [--keep-profiles DIR] [--syscalls] [--perf [--perf-keep DIR]] [--json FILE]
workloads (bench/README.md): ${WORKLOAD_IDS.join(' ')}`;
const args = toolArgs(
  {
    requests: { type: 'string', default: '30000' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '100' },
    compare: { type: 'string' },
    'compare-node-args': { type: 'string' },
    profile: { type: 'boolean', default: false },
    only: { type: 'string' },
    json: { type: 'string' },
    'keep-profiles': { type: 'string' },
    syscalls: { type: 'boolean', default: false },
    perf: { type: 'boolean', default: false },
    'perf-keep': { type: 'string' },
  },
  USAGE,
  ['requests', 'rounds', 'connections'],
);
const unknownWorkloads = (args.only?.split(',') ?? []).filter((id) => !(WORKLOAD_IDS as readonly string[]).includes(id));
if (unknownWorkloads.length > 0) {
  process.stderr.write(`--only: no workload named ${unknownWorkloads.join(', ')}\n${USAGE}\n`);
  process.exit(2);
}
const N = Number(args.requests);
const R = Number(args.rounds);
const C = Number(args.connections);
const log = (msg: string) => process.stdout.write(`${msg}\n`);

/** Drives exactly `amount` requests; returns the answers with the expected status and the others. */
async function drive(t: LoadTarget, amount: number): Promise<{ ok: number; wrong: number; rps: number }> {
  const r = await autocannon({ url: t.url, connections: C, amount, pipelining: 1, ...(t.headers ? { headers: t.headers } : {}) });
  let ok = 0;
  let wrong = r.errors + r.timeouts;
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) {
    if (Number(code) === t.expectStatus) ok += s.count ?? 0;
    else wrong += s.count ?? 0;
  }
  return { ok, wrong, rps: r.requests.average };
}

/** A gateway process of one source tree. */
interface TreeGateway {
  tree: string;
  label: string;
  port: number;
  proc: BenchChild;
  /** Node flags it was started with (`--compare-node-args`). */
  flags: string[];
}

/** Starts `portcullis run --services gateway` from `tree` against the environment's cluster. */
async function startTreeGateway(env: Environment, tree: string, label: string, nodeArgs: string[] = []): Promise<TreeGateway> {
  const port = await getFreePort();
  const metrics = await getFreePort();
  const proc = await spawnChild({
    name: `gateway(${label})@${port}`,
    command: process.execPath,
    args: [...nodeArgs, join(tree, 'node_modules', '@portcullis', 'cli', 'bin', 'portcullis.mjs'), 'run', '--config', env.configFile, '--services', 'gateway'],
    env: { ...process.env, PORTCULLIS_OUTPOST__LISTEN__HTTP: `127.0.0.1:${port}`, PORTCULLIS_OUTPOST__LISTEN__METRICS: `127.0.0.1:${metrics}` },
    isReady: () => answersPing(metrics, port),
    timeoutMs: 60_000,
  });
  return { tree, label, port, proc, flags: nodeArgs };
}

/** One kind of request; `server` says which process serves it (a gateway of a tree, or a baseline). */
interface Workload {
  id: string;
  gateway: boolean;
  target: (port: number) => LoadTarget;
}

/** One measured run: the server's CPU µs and minor page faults per answered request, and what the upstream and the load generator spent beside it. */
interface RunCpu {
  us: number;
  rps: number;
  faults: number;
  /** The bench upstream's CPU µs per request (0 for workloads that do not reach it). */
  upstreamUs: number;
  /** This process's CPU µs per request (autocannon drives the load from here). */
  loadUs: number;
}

/**
 * CPU µs and minor page faults per answered request of `pid` while `t` is driven N times, with the
 * upstream's (`upstreamPid`) and the load generator's: the three share the 2 cores, so a server that
 * makes the upstream work harder (more headers to parse, say) costs throughput there too.
 */
async function cpuPerRequest(pid: number, t: LoadTarget, upstreamPid: number): Promise<RunCpu> {
  const faultsBefore = minorFaults(pid);
  const before = cpuSeconds(pid);
  const upstreamBefore = cpuSeconds(upstreamPid);
  const loadBefore = process.cpuUsage();
  const r = await drive(t, N);
  const after = cpuSeconds(pid);
  const upstreamAfter = cpuSeconds(upstreamPid);
  const load = process.cpuUsage(loadBefore);
  const faultsAfter = minorFaults(pid);
  if (r.wrong > 0) log(`    (${r.wrong} answers with another status than ${t.expectStatus})`);
  const ok = Math.max(1, r.ok);
  return {
    us: ((after - before) * 1e6) / ok,
    rps: r.rps,
    faults: (faultsAfter - faultsBefore) / ok,
    upstreamUs: ((upstreamAfter - upstreamBefore) * 1e6) / ok,
    loadUs: (load.user + load.system) / ok,
  };
}

/** System calls per answered request of `pid` (all its threads) while `t` is driven N times, from `strace -c -f`. */
async function syscallsPerRequest(pid: number, t: LoadTarget): Promise<Array<{ name: string; perRequest: number }>> {
  const out = join(mkdtempSync(join(tmpdir(), 'portcullis-strace-')), 'summary.txt');
  const tracer = spawn('strace', ['-c', '-f', '-p', String(pid), '-o', out], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  tracer.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString('utf8');
  });
  const exited = new Promise<number | null>((r) => tracer.once('exit', (code) => r(code)));
  // strace says "Process N attached" (once per thread) when it is tracing.
  for (let i = 0; i < 100 && !stderr.includes('attached'); i++) await new Promise((r) => setTimeout(r, 50));
  if (!stderr.includes('attached')) throw new Error(`strace did not attach to ${pid}: ${stderr.trim() || 'no output'} (install strace; tracing needs root or ptrace rights)`);
  const r = await drive(t, N);
  tracer.kill('SIGINT');
  await exited;
  // Lines: "% time  seconds  usecs/call  calls  errors  syscall"; the errors column may be empty.
  const rows: Array<{ name: string; perRequest: number }> = [];
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    const cols = line.trim().split(/\s+/);
    const name = cols.at(-1);
    if (!name || cols.length < 5 || !/^[\d.]+$/.test(cols[0] ?? '') || name === 'total') continue;
    rows.push({ name, perRequest: Number(cols[3]) / Math.max(1, r.ok) });
  }
  return rows.sort((a, b) => b.perRequest - a.perRequest);
}

/**
 * Where `pid`'s CPU went (all its threads) while `t` is driven N times, from `perf record` cpu-clock
 * samples. With `keep`, call graphs are recorded and the data file kept (`perf report -i FILE -g`;
 * JavaScript frames get names when the servers run with `NODE_OPTIONS=--perf-basic-prof`).
 */
async function perfPerRequest(pid: number, t: LoadTarget, keep?: { dir: string; name: string }): Promise<{ byDso: Array<{ name: string; us: number }>; bySymbol: Array<{ name: string; us: number }>; usTotal: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-perf-'));
  const data = join(dir, 'perf.data');
  const HZ = 4999;
  const recorder = spawn('perf', ['record', ...(keep ? ['-g'] : []), '-e', 'cpu-clock', '-F', String(HZ), '-p', String(pid), '-o', data], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  recorder.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString('utf8');
  });
  const exited = new Promise<number | null>((r) => {
    recorder.once('exit', (code) => r(code));
    // Not installed: spawn fails with ENOENT (said below), not an unhandled 'error' event.
    recorder.once('error', (err) => {
      stderr += err.message;
      r(null);
    });
  });
  const failed = await Promise.race([exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 500))]);
  if (failed) throw new Error(`perf record did not start on ${pid}: ${stderr.trim() || 'no output'} (apt-get install -y linux-perf)`);
  const r = await drive(t, N);
  recorder.kill('SIGINT');
  await exited;
  const report = (sort: string) =>
    new Promise<string>((res, rej) => {
      const p = spawn('perf', ['report', '-i', data, '--stdio', '--no-children', '--sort', sort, '--percent-limit', '0.5', '-n'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      p.stdout.on('data', (c: Buffer) => {
        out += c.toString('utf8');
      });
      p.once('exit', () => res(out));
      p.once('error', rej);
    });
  // Lines: "  12.34%  5678  name"; samples × (1 / HZ) s is the CPU they stand for.
  const parse = (out: string) =>
    out
      .split('\n')
      .map((l) => /^\s*([\d.]+)%\s+(\d+)\s+(.*\S)\s*$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ name: m[3]!, us: (Number(m[2]) * 1e6) / HZ / Math.max(1, r.ok) }));
  const byDso = parse(await report('dso'));
  const bySymbol = parse(await report('dso,sym')).slice(0, 30);
  if (keep) {
    mkdirSync(keep.dir, { recursive: true });
    copyFileSync(data, join(keep.dir, `${keep.name}.perf.data`));
  }
  rmSync(dir, { recursive: true, force: true });
  return { byDso, bySymbol, usTotal: byDso.reduce((a, x) => a + x.us, 0) };
}

/** A kept file's name (without extension) for a workload on a server. */
const fileStem = (workload: string, server: string) => `${workload}-${server.replace(/[^a-z0-9]+/gi, '_')}`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Runs `w` against a fresh process started under `--cpu-prof` (`start` gets the node arguments) and summarizes the measured window. */
async function profileOn(label: string, w: Workload, start: (nodeArgs: string[]) => Promise<{ port: number; stop(): Promise<void> }>): Promise<ProfileSummary> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-cpu-prof-'));
  const server = await start(['--cpu-prof', '--cpu-prof-dir', dir]);
  let window: ProfileWindow;
  try {
    await drive(w.target(server.port), Math.min(N, 10_000));
    const from = process.hrtime.bigint();
    await drive(w.target(server.port), N);
    window = { from, to: process.hrtime.bigint() };
  } finally {
    await server.stop();
  }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile was written for ${w.id} (${label})`);
  const summary = summarizeProfile(join(dir, file), 25, window);
  if (args['keep-profiles']) {
    mkdirSync(args['keep-profiles'], { recursive: true });
    const name = fileStem(w.id, label);
    copyFileSync(join(dir, file), join(args['keep-profiles'], `${name}.cpuprofile`));
    writeFileSync(join(args['keep-profiles'], `${name}.window.json`), JSON.stringify({ from: String(window.from), to: String(window.to) }));
    const flame = buildFlameTree(readProfile(join(dir, file)), window);
    writeFileSync(join(args['keep-profiles'], `${name}.flame.svg`), renderFlameGraph(flame, `${w.id} on ${label}`, `${N} requests, the measured window only`));
  }
  rmSync(dir, { recursive: true, force: true });
  return summary;
}

async function main(): Promise<void> {
  log('starting NATS (3 nodes), Redis, IdP, upstream, session + auth + 1 gateway ...');
  const env = await startEnvironment({ gateways: 1 });
  const fx = await prepareHttpFixtures(env);
  const helpers: BenchChild[] = [];
  const trees: TreeGateway[] = [];
  let nginx: FrontProxy | undefined;
  try {
    const fwd = fx.forwardAuth(env.gatewayPort);
    const identity = await gatewayIdentity(env, fx);
    const bare = await startHelper('bare-auth', 'servers/bare-auth.ts', [JSON.stringify(identity)]);
    const upstreamOrigin = `http://127.0.0.1:${env.upstream.port}`;
    const upstreamHeaders = await gatewayUpstreamHeaders(env, fx.appCookie);
    const identityHeaders = JSON.stringify(upstreamHeaders);
    /** Each bare proxy baseline: its helper's arguments (also used to start a profiled copy). */
    const proxyArgs = {
      undici: [upstreamOrigin, 'undici'],
      undiciIdentity: [upstreamOrigin, 'undici', identityHeaders],
      nativeIdentity: [upstreamOrigin, 'native', identityHeaders],
    };
    const undiciProxy = await startHelper('undici-proxy', 'servers/bare-proxy.ts', proxyArgs.undici);
    const identityProxy = await startHelper('undici-proxy-identity', 'servers/bare-proxy.ts', proxyArgs.undiciIdentity);
    const nativeProxy = await startHelper('native-relay-identity', 'servers/bare-proxy.ts', proxyArgs.nativeIdentity);
    helpers.push(bare, undiciProxy, identityProxy, nativeProxy);
    // nginx (one worker, as scenario 2 runs it): its worker serves, so its CPU and perf samples are the worker's.
    nginx = await startBenchNginx(env.upstream.port, upstreamHeaders);
    await checkNginxIdentity(nginx.port, env.appHost, fx.appCookie, upstreamHeaders);
    const nginxWorker = processTree(nginx.pid)[1];
    if (nginxWorker === undefined) throw new Error(`nginx (pid ${nginx.pid}) has no worker process: ${nginx.logTail()}`);
    const gw0 = env.gateways()[0]!;
    trees.push({ tree: ROOT, label: 'this tree', port: gw0.http, proc: gw0.proc, flags: [] });
    if (args.compare) {
      const flags = args['compare-node-args']?.split(' ').filter(Boolean) ?? [];
      const label = `compare: ${args.compare}${flags.length > 0 ? ` ${flags.join(' ')}` : ''}`;
      trees.push(await startTreeGateway(env, resolve(args.compare), label, flags));
    }

    const app = { host: env.appHost, cookie: fx.appCookie };
    const proxyTo = (path: string) => (port: number): LoadTarget => ({ label: path, url: `http://127.0.0.1:${port}${path}`, headers: app, expectStatus: 200 });
    const workloads: Workload[] = [
      { id: 'bare-auth', gateway: false, target: (port) => ({ ...fwd, url: `http://127.0.0.1:${port}/outpost.goauthentik.io/auth/nginx` }) },
      { id: 'fwd', gateway: true, target: (port) => fx.forwardAuth(port) },
      {
        id: 'allow',
        gateway: true,
        target: (port) => ({
          label: 'allow',
          url: `http://127.0.0.1:${port}/outpost.goauthentik.io/auth/nginx`,
          headers: { host: env.fwdHost, 'x-original-url': `http://${env.fwdHost}/public/asset.css` },
          expectStatus: 200,
        }),
      },
      { id: 'redirect', gateway: true, target: (port) => ({ label: 'redirect', url: `http://127.0.0.1:${port}/private/page?x=1`, headers: { host: env.appHost }, expectStatus: 302 }) },
      { id: 'nginx-small', gateway: false, target: proxyTo('/small') },
      { id: 'nginx-id-small', gateway: false, target: proxyTo(`${IDENTITY_PREFIX}/small`) },
      { id: 'undici-small', gateway: false, target: proxyTo('/small') },
      { id: 'undici-id-small', gateway: false, target: proxyTo('/small') },
      { id: 'native-id-small', gateway: false, target: proxyTo('/small') },
      { id: 'proxy-small', gateway: true, target: proxyTo('/small') },
      { id: 'nginx-64k', gateway: false, target: proxyTo('/64k') },
      { id: 'nginx-64k-buffers', gateway: false, target: proxyTo(`${LARGE_BUFFERS_PREFIX}/64k`) },
      { id: 'undici-64k', gateway: false, target: proxyTo('/64k') },
      { id: 'native-id-64k', gateway: false, target: proxyTo('/64k') },
      { id: 'proxy-64k', gateway: true, target: proxyTo('/64k') },
      { id: 'proxy-64k-chunked', gateway: true, target: proxyTo('/chunked-64k') },
      { id: 'proxy-small-chunked', gateway: true, target: proxyTo('/chunked-small') },
    ];
    const portOf = (h: BenchChild) => (h.ready as { port: number }).port;
    const baselineOf = (w: Workload) =>
      w.id === 'bare-auth' ? bare : w.id === 'undici-id-small' ? identityProxy : w.id === 'native-id-small' || w.id === 'native-id-64k' ? nativeProxy : undiciProxy;
    const argsOf = (base: BenchChild) => (base === identityProxy ? proxyArgs.undiciIdentity : base === nativeProxy ? proxyArgs.nativeIdentity : proxyArgs.undici);
    /** The processes a workload runs on: each tree's gateway, or the workload's baseline. */
    const isNginx = (w: Workload) => w.id.startsWith('nginx-');
    const serversOf = (w: Workload) =>
      w.gateway
        ? trees.map((g) => ({ label: g.label, pid: g.proc.pid, target: w.target(g.port) }))
        : isNginx(w)
          ? [{ label: 'nginx worker', pid: nginxWorker, target: w.target(nginx!.port) }]
          : [{ label: 'baseline', pid: baselineOf(w).pid, target: w.target(portOf(baselineOf(w))) }];
    const ids = workloads.map((w) => w.id).join(' ');
    if (ids !== WORKLOAD_IDS.join(' ')) throw new Error(`cpu-per-request: the workloads (${ids}) and WORKLOAD_IDS differ: keep them the same`);
    const only = args.only ? new Set(args.only.split(',')) : null;
    const selected = workloads.filter((w) => !only || only.has(w.id));
    const results: Array<{ workload: string; server: string; usPerRequest: number; runs: number[]; rps: number; upstreamUs: number; loadUs: number; profile?: ProfileSummary }> = [];
    for (const w of selected) {
      const servers = serversOf(w);
      for (const s of servers) {
        const warm = await drive(s.target, Math.min(N, 10_000));
        if (warm.ok === 0) throw new Error(`${w.id} on ${s.label}: warm-up got no ${s.target.expectStatus} answer (${warm.wrong} others)`);
      }
      const runs = new Map(servers.map((s) => [s.label, [] as RunCpu[]]));
      for (let r = 0; r < R; r++) {
        for (const s of r % 2 === 0 ? servers : [...servers].reverse()) runs.get(s.label)!.push(await cpuPerRequest(s.pid, s.target, env.upstream.pid));
      }
      for (const s of servers) {
        const rs = runs.get(s.label)!;
        const us = median(rs.map((x) => x.us));
        const rps = rs.reduce((a, x) => a + x.rps, 0) / rs.length;
        const upstreamUs = median(rs.map((x) => x.upstreamUs));
        const loadUs = median(rs.map((x) => x.loadUs));
        results.push({ workload: w.id, server: s.label, usPerRequest: us, runs: rs.map((x) => x.us), rps, upstreamUs, loadUs });
        log(`${w.id.padEnd(13)} ${s.label.padEnd(28)} ${us.toFixed(1).padStart(7)} µs CPU/request  (runs ${rs.map((x) => x.us.toFixed(1)).join(', ')}; ~${Math.round(rps)} req/s; page faults/request ${rs.map((x) => x.faults.toFixed(2)).join(', ')})`);
        log(`${''.padEnd(42)} beside it: upstream ${upstreamUs.toFixed(1)}, load generator ${loadUs.toFixed(1)} µs CPU/request (medians)`);
      }
    }
    if (args.syscalls) {
      for (const w of selected) {
        const servers = serversOf(w);
        for (const s of servers) {
          const rows = await syscallsPerRequest(s.pid, s.target);
          const total = rows.reduce((a, x) => a + x.perRequest, 0);
          log(`\nsyscalls ${w.id} (${s.label}): ${total.toFixed(2)} per request`);
          for (const x of rows.filter((x) => x.perRequest >= 0.01)) log(`  ${x.perRequest.toFixed(3).padStart(8)}  ${x.name}`);
        }
      }
    }
    if (args.perf) {
      for (const w of selected) {
        for (const s of serversOf(w)) {
          const keep = args['perf-keep'] ? { dir: args['perf-keep'], name: fileStem(w.id, s.label) } : undefined;
          const p = await perfPerRequest(s.pid, s.target, keep);
          log(`\nperf ${w.id} (${s.label}): ${p.usTotal.toFixed(1)} µs CPU per request sampled (shares above 0.5 % listed)`);
          for (const x of p.byDso) log(`  ${x.us.toFixed(2).padStart(7)} µs/req  ${x.name}`);
          log('  top symbols:');
          for (const x of p.bySymbol) log(`  ${x.us.toFixed(2).padStart(7)} µs/req  ${x.name}`);
        }
      }
    }
    if (args.profile) {
      const show = (w: Workload, label: string, p: ProfileSummary) => {
        const row = results.find((r) => r.workload === w.id && r.server === label);
        if (row) row.profile = p;
        log(`\nprofile ${w.id} (${label}): ${p.samplesMs} ms busy over ${N} requests (${((p.samplesMs * 1000) / N).toFixed(1)} µs/req under the profiler)`);
        // Self time per request: the share of busy time × busy time ÷ requests driven.
        for (const e of p.top) log(`  ${e.selfPct.toFixed(1).padStart(5)} %  ${((e.selfPct * p.samplesMs * 10) / N).toFixed(2).padStart(6)} µs/req  ${e.fn}  ${e.where}`);
        log(`  by area: ${p.byArea.map((a) => `${a.area} ${a.selfPct} %`).join(', ')}`);
      };
      for (const w of selected) {
        if (isNginx(w)) continue; // not a node process: --perf shows where its CPU goes
        if (!w.gateway) {
          const base = baselineOf(w);
          const script = base === bare ? 'servers/bare-auth.ts' : 'servers/bare-proxy.ts';
          const argv = base === bare ? [JSON.stringify(identity)] : argsOf(base);
          show(w, 'baseline', await profileOn('baseline', w, async (nodeArgs) => {
            const h = await startHelper(`${w.id}-profiled`, script, argv, nodeArgs);
            return { port: portOf(h), stop: () => h.stop() };
          }));
          continue;
        }
        for (const g of trees) {
          show(w, g.label, await profileOn(g.label, w, async (nodeArgs) => {
            const gw = await startTreeGateway(env, g.tree, g.label, [...g.flags, ...nodeArgs]);
            return { port: gw.port, stop: () => gw.proc.stop() };
          }));
        }
      }
    }
    if (args.json) writeFileSync(args.json, JSON.stringify(results, null, 2));
  } finally {
    await Promise.all([...helpers.map((h) => h.stop()), ...(nginx ? [nginx.stop()] : []), ...trees.slice(1).map((g) => g.proc.stop())]);
    await fx.close();
    await env.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`cpu-per-request failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
