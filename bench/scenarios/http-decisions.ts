// Scenarios 1–3: forward-auth decision, proxy mode, unauthenticated redirect and allow-listed path, each against its baseline.
import { availableParallelism } from 'node:os';
import { request } from 'undici';
import type { Environment } from '../lib/environment.ts';
import { type LoadSettings, type LoadTarget, type TargetResult, atLeast, compare, cpuRatio, ratio, ratioWithRounds, roundRatios, roundsStraddle } from '../lib/load.ts';
import { IDENTITY_PREFIX, LARGE_BUFFERS_PREFIX, startBenchNginx } from '../lib/nginx.ts';
import { type BenchChild, startHelper } from '../lib/processes.ts';
import type { ScenarioReport, TargetCheck } from '../lib/report-types.ts';
import { appendSessions } from '../lib/sessions.ts';

type Log = (msg: string) => void;
const fmt = (n: number, digits = 2) => n.toFixed(digits);

/** Loads that the profiler replays: the forward-auth and proxy requests of scenarios 1 and 2. */
export interface HttpFixtures {
  forwardAuth(port: number): LoadTarget;
  proxySmall(port: number): LoadTarget;
  close(): Promise<void>;
}

/** The bare forward-auth baseline, started with the very headers Portcullis answers (shared by scenarios 1 and 3). */
let bareAuth: BenchChild | undefined;

/** Sessions and request shapes for the HTTP scenarios; the sessions outlive the run by `lifetimeMs` (default 1 h). */
export async function prepareHttpFixtures(env: Environment, lifetimeMs?: number): Promise<HttpFixtures & { fwdCookie: string; appCookie: string }> {
  const fwd = await appendSessions(env, 'fwd', ['bench-forward-auth'], 1, lifetimeMs);
  const app = await appendSessions(env, 'app', ['bench-proxy'], 1, lifetimeMs);
  const fwdCookie = fwd.sessions[0]!.cookie;
  const appCookie = app.sessions[0]!.cookie;
  return {
    fwdCookie,
    appCookie,
    forwardAuth: (port) => ({
      label: 'portcullis forward auth',
      url: `http://127.0.0.1:${port}/outpost.goauthentik.io/auth/nginx`,
      headers: { host: env.fwdHost, cookie: fwdCookie, 'x-original-url': `http://${env.fwdHost}/private/page` },
      expectStatus: 200,
    }),
    proxySmall: (port) => ({ label: 'portcullis proxy', url: `http://127.0.0.1:${port}/small`, headers: { host: env.appHost, cookie: appCookie }, expectStatus: 200 }),
    async close() {
      await bareAuth?.stop();
      bareAuth = undefined;
    },
  };
}

/** The 12 X-authentik-* headers gateway 0 answers for the bench session: what the bare-auth baseline sends. */
export async function gatewayIdentity(env: Environment, fx: HttpFixtures): Promise<Array<[string, string]>> {
  const t = fx.forwardAuth(env.gatewayPort);
  const r = await request(t.url, { headers: t.headers! });
  await r.body.dump();
  if (r.statusCode !== 200) throw new Error(`forward auth with the bench session answered ${r.statusCode}`);
  const identity = Object.entries(r.headers)
    .filter(([k]) => k.startsWith('x-authentik-'))
    .map(([k, v]): [string, string] => [k, String(v)]);
  if (identity.length !== 12) throw new Error(`forward auth answered ${identity.length} X-authentik-* headers, expected 12`);
  return identity;
}

/** The gateway the scenarios load (the one listening on `env.gatewayPort`) as a load target's process: its CPU split by thread and its GC are recorded too. */
function gatewayProcess(env: Environment): Pick<LoadTarget, 'pid' | 'threads' | 'metricsPort'> {
  const gw = env.gateways().find((g) => g.http === env.gatewayPort);
  if (!gw) throw new Error(`no gateway listens on ${env.gatewayPort}`);
  return { pid: gw.proc.pid, threads: true, metricsPort: gw.metrics };
}

/** "X.Y µs vs X.Y µs per request → ratio" for the figures. */
function cpuFigure(subject: TargetResult, baseline: TargetResult): string {
  return `${fmt(subject.cpuUs, 1)} µs vs ${fmt(baseline.cpuUs, 1)} µs per request → ${fmt(cpuRatio(subject, baseline))}`;
}

async function ensureBareAuth(env: Environment, fx: HttpFixtures): Promise<BenchChild & { port: number }> {
  bareAuth ??= await startHelper('bare-auth', 'servers/bare-auth.ts', [JSON.stringify(await gatewayIdentity(env, fx))]);
  return Object.assign(bareAuth, { port: (bareAuth.ready as { port: number }).port });
}

/** Scenario 1's saturated comparison (its name is also its key in bench/quiet-reference.json). */
export const SATURATED = 'auth/nginx, valid session, saturated';

/** Scenario 3's comparison (its name is also its key in bench/quiet-reference.json). */
export const NO_SESSION = 'no session';

/** Scenario 1: forward auth with a valid session vs a bare node:http 200 with the same 12 headers. */
export async function forwardAuthScenario(env: Environment, fx: HttpFixtures, s: LoadSettings, log: Log): Promise<ScenarioReport> {
  const bare = await ensureBareAuth(env, fx);
  const subject = { ...fx.forwardAuth(env.gatewayPort), ...gatewayProcess(env) };
  const baseline: LoadTarget = {
    label: 'bare node:http',
    url: `http://127.0.0.1:${bare.port}/outpost.goauthentik.io/auth/nginx`,
    headers: subject.headers!,
    expectStatus: 200,
    pid: bare.pid,
    threads: true,
  };
  log('  saturated (each connection sends as soon as it is answered)');
  const [b, p] = await compare([baseline, subject], s, log);
  const r = ratio(p!, b!);
  // Latency is judged below saturation: at saturation a closed loop of N connections waits N / throughput
  // on average (Little's law), 100 / 31 000 req/s = 3.2 ms even for the bare server, so its p99 measures the queue.
  const rate = Math.round(b!.rps * PACED_SHARE);
  log(`  paced: ${rate} req/s over ${s.connections} connections (${PACED_SHARE * 100} % of the bare server's saturated throughput)`);
  const [bp, pp] = await compare([baseline, subject], { ...s, rate }, log);
  const kept = pp!.rps / rate;
  const pacedName = `auth/nginx, valid session, paced at ${rate} req/s`;
  return {
    id: 1,
    title: 'Forward-auth decision (cluster mode, valid session)',
    comparisons: [
      { name: SATURATED, baseline: b!.label, targets: [b!, p!] },
      { name: pacedName, baseline: bp!.label, targets: [bp!, pp!], paced: true },
    ],
    figures: [
      { name: 'throughput ratio (portcullis / bare)', value: fmt(r) },
      { name: `p99 saturated, portcullis / bare (mean wait at saturation = ${s.connections} connections ÷ throughput)`, value: `${p!.latency.p99} / ${b!.latency.p99}`, unit: 'ms' },
      { name: `p50 / p99 / p99.9 paced at ${rate} req/s, portcullis`, value: `${pp!.latency.p50} / ${pp!.latency.p99} / ${pp!.latency.p99_9}`, unit: 'ms' },
      { name: `p50 / p99 / p99.9 paced at ${rate} req/s, bare`, value: `${bp!.latency.p50} / ${bp!.latency.p99} / ${bp!.latency.p99_9}`, unit: 'ms' },
      { name: 'paced: share of the offered rate portcullis answered', value: fmt(kept) },
      { name: 'server CPU per request, portcullis vs bare → capacity ratio (bare / portcullis)', value: cpuFigure(p!, b!) },
    ],
    targets: [
      throughputTarget('throughput vs bare node:http', p!, b!, 0.8, SATURATED),
      pacedLatencyTarget(pp!, bp!, kept, s.connections, pacedName),
    ],
    notes: [
      'Gateway: one `portcullis run --services gateway` process (cluster block: 3-node NATS JetStream + Redis; separate auth and session processes); the session is a warm cache hit.',
      'Baseline: node:http in its own process answering 200 with the 12 X-authentik-* headers Portcullis sent for the same session.',
      `Saturated: every connection sends its next request when the last is answered, so latency is mostly queueing (Little's law: mean latency = ${s.connections} connections ÷ throughput). Paced: the same ${s.connections} keep-alive connections carry a fixed ${rate} req/s in all, each request sent at its own scheduled instant and its latency counted from that instant (queueing included; lib/paced-load.ts), ${PACED_SHARE * 100} % of what the bare server answered saturated; the p99 target is judged there, and only if Portcullis kept up with ≥ 97 % of the offered rate; when the bare server's own p99 misses it in the same run, the host stalled and the verdict is flagged as no evidence.`,
    ],
  };
}

/**
 * Scenario 1's latency target: p99 ≤ 5 ms at the paced rate, and only if Portcullis kept up with the
 * offered rate (an answer rate short of it means a queue, which the percentiles would not show). The
 * bare server in the same run is the host's own floor: when it misses the target too, the host stalled
 * (a virtual machine's cores paused) and the verdict is flagged as no evidence about Portcullis.
 */
export function pacedLatencyTarget(portcullis: TargetResult, bare: TargetResult, kept: number, connections: number, comparison: string): TargetCheck {
  return {
    comparison,
    what: `p99 at ${connections} connections, paced at ${PACED_SHARE * 100} % of the bare server's throughput`,
    target: '≤ 5 ms',
    measured: `${portcullis.latency.p99} ms`,
    met: portcullis.latency.p99 <= 5 && kept >= 0.97,
    ...(bare.latency.p99 > 5 ? { contended: `the bare server's own paced p99 was ${bare.latency.p99} ms in the same run: the host stalled` } : {}),
  };
}

/**
 * Share of the bare server's saturated throughput offered in scenario 1's paced latency run: a busy
 * but not saturated server. At 50 % the gateway (~1.3× the bare server's CPU per request), the load
 * generator and the cluster's other processes left the 2 shared cores no headroom: windows of a few
 * hundred ms where a queue built up (p99 27–173 ms while the gateway's own event-loop lag stayed
 * under 22 ms); at 25 % p99 was 2.8 ms in most runs.
 */
const PACED_SHARE = 0.25;

/**
 * The headers gateway 0 adds to a proxied request of the bench session (identity, X-Forwarded-*,
 * X-Real-IP), read back from the upstream's /echo-headers: what the like-for-like proxy baseline adds.
 */
export async function gatewayUpstreamHeaders(env: Environment, appCookie: string): Promise<Array<[string, string]>> {
  const r = await request(`http://127.0.0.1:${env.gatewayPort}/echo-headers`, { headers: { host: env.appHost, cookie: appCookie } });
  if (r.statusCode !== 200) throw new Error(`a proxied /echo-headers with the bench session answered ${r.statusCode}`);
  const sent = (await r.body.json()) as Record<string, string>;
  const added = Object.entries(sent).filter(([k]) => k.startsWith('x-authentik-') || k.startsWith('x-forwarded-') || k === 'x-real-ip');
  if (added.filter(([k]) => k.startsWith('x-authentik-')).length !== 12) throw new Error(`the gateway sent ${added.length} added headers upstream, expected the 12 X-authentik-* among them`);
  return added;
}

/**
 * Checks that nginx's identity location sends the upstream what the gateway sent it (`sent`, from
 * {@link gatewayUpstreamHeaders}): every header, with the same value but for an empty one (nginx leaves it
 * out) and X-Forwarded-Host (nginx's is the Host it was sent). Throws naming the differences.
 */
export async function checkNginxIdentity(nginxPort: number, host: string, cookie: string, sent: ReadonlyArray<readonly [string, string]>): Promise<void> {
  const r = await request(`http://127.0.0.1:${nginxPort}${IDENTITY_PREFIX}/echo-headers`, { headers: { host, cookie } });
  if (r.statusCode !== 200) throw new Error(`nginx's ${IDENTITY_PREFIX}/echo-headers answered ${r.statusCode}`);
  const got = (await r.body.json()) as Record<string, string>;
  const wrong = sent.filter(([k, v]) => v !== '' && k !== 'x-forwarded-host' && got[k] !== v).map(([k, v]) => `${k}: ${JSON.stringify(got[k])} instead of ${JSON.stringify(v)}`);
  if (got['x-forwarded-host'] === undefined) wrong.push('x-forwarded-host: missing');
  if (wrong.length > 0) throw new Error(`nginx's identity location does not send the upstream what the gateway sends: ${wrong.join('; ')}`);
}

/** Scenario 2's bodies: label and upstream path. */
const PROXY_BODIES = [
  ['small body (11 B)', '/small'],
  ['64 KiB body', '/64k'],
] as const;

/** Scenario 2's nginx with proxy buffers a 64 KiB answer fits in (shown beside the default, not judged). */
const NGINX_LARGE_BUFFERS = 'nginx, 64 KiB proxy buffers';

/** Scenario 2's nginx also sending upstream the headers the gateway adds for the session (11 B, shown beside, not judged). */
const NGINX_IDENTITY = 'nginx + the same identity headers';

/** Every saturated comparison scenarios 1–3 report (the keys bench/quiet-reference.json may hold). */
export const SATURATED_COMPARISONS: readonly string[] = [SATURATED, ...PROXY_BODIES.map(([size]) => proxyComparison(size)), NO_SESSION];

/** A "≥ line" throughput target of `subject` against `baseline`: its rounds, and whether they fell on both sides of the line. */
function throughputTarget(what: string, subject: TargetResult, baseline: TargetResult, line: number, comparison: string): TargetCheck {
  return {
    what,
    target: `≥ ${fmt(line)}`,
    measured: ratioWithRounds(subject, baseline, fmt),
    met: ratio(subject, baseline) >= line,
    onTheLine: roundsStraddle(subject, baseline, atLeast(line)),
    comparison,
  };
}

/**
 * A "≤ 5 % over the baseline" target: how much less throughput `subject` has than `baseline` (1 − the
 * ratio), with its rounds' own percentages and whether they fell on both sides of the line.
 */
function overTarget(what: string, subject: TargetResult, baseline: TargetResult, comparison: string): TargetCheck {
  const over = 1 - ratio(subject, baseline);
  const rounds = roundRatios(subject, baseline).map((r) => (1 - r) * 100);
  return {
    what,
    target: '≤ 5 %',
    measured: `${fmt(over * 100, 1)} %${rounds.length < 2 ? '' : ` (rounds ${fmt(Math.min(...rounds), 1)}–${fmt(Math.max(...rounds), 1)} %)`}`,
    met: over <= 0.05,
    onTheLine: roundsStraddle(subject, baseline, atLeast(0.95)),
    comparison,
  };
}

/** Scenario 2's comparison for one body size (its name is also its key in bench/quiet-reference.json). */
function proxyComparison(size: string): string {
  return `proxy, ${size}`;
}

/**
 * Scenario 2: proxy mode (small and 64 KiB bodies) vs nginx proxy_pass (keepalive), bare node:http +
 * undici.Pool proxies (the issue's baseline: one forwarding the client's headers only, one also adding
 * the very headers the gateway adds for the session), and the gateway's own native relay with those
 * headers but no auth (so the auth work itself is isolated too). The gateway runs twice: one process
 * (judged) and one per core (`outpost.workers`), shown beside it.
 */
export async function proxyScenario(env: Environment, fx: HttpFixtures & { appCookie: string }, s: LoadSettings, log: Log): Promise<ScenarioReport> {
  const upstreamHeaders = await gatewayUpstreamHeaders(env, fx.appCookie);
  const nginx = await startBenchNginx(env.upstream.port, upstreamHeaders);
  await checkNginxIdentity(nginx.port, env.appHost, fx.appCookie, upstreamHeaders);
  const upstreamOrigin = `http://127.0.0.1:${env.upstream.port}`;
  const identityHeaders = JSON.stringify(upstreamHeaders);
  const undiciProxy = await startHelper('undici-proxy', 'servers/bare-proxy.ts', [upstreamOrigin, 'undici']);
  const identityProxy = await startHelper('undici-proxy-identity', 'servers/bare-proxy.ts', [upstreamOrigin, 'undici', identityHeaders]);
  const nativeProxy = await startHelper('native-relay-identity', 'servers/bare-proxy.ts', [upstreamOrigin, 'native', identityHeaders]);
  const portOf = (h: typeof undiciProxy) => (h.ready as { port: number }).port;
  const workerCount = availableParallelism();
  const workers = await env.startMember('gateway', { env: { PORTCULLIS_OUTPOST__WORKERS: String(workerCount) } });
  const workersLabel = `portcullis proxy, outpost.workers: ${workerCount}`;
  const report: ScenarioReport = { id: 2, title: 'Proxy mode (valid session)', comparisons: [], figures: [], targets: [], notes: [] };
  try {
    for (const [size, path] of PROXY_BODIES) {
      log(`  ${size}`);
      const headers = { host: env.appHost, cookie: fx.appCookie };
      const targets: LoadTarget[] = [
        { label: 'nginx proxy_pass', url: `http://127.0.0.1:${nginx.port}${path}`, headers, expectStatus: 200, pid: nginx.pid },
        { label: 'node:http + undici.Pool', url: `http://127.0.0.1:${portOf(undiciProxy)}${path}`, headers, expectStatus: 200, pid: undiciProxy.pid, threads: true },
        { label: 'undici.Pool + identity headers', url: `http://127.0.0.1:${portOf(identityProxy)}${path}`, headers, expectStatus: 200, pid: identityProxy.pid, threads: true },
        { label: 'native relay + identity headers', url: `http://127.0.0.1:${portOf(nativeProxy)}${path}`, headers, expectStatus: 200, pid: nativeProxy.pid, threads: true },
        { label: 'portcullis proxy', url: `http://127.0.0.1:${env.gatewayPort}${path}`, headers, expectStatus: 200, ...gatewayProcess(env) },
        // The primary and its workers: their CPU is summed (the process tree of pid).
        { label: workersLabel, url: `http://127.0.0.1:${workers.http}${path}`, headers, expectStatus: 200, pid: workers.proc.pid },
      ];
      // nginx's default buffers (8 × 4 KiB) take a 64 KiB answer in 11 reads and 7 writes: the same nginx
      // with buffers it fits in is shown beside (an 11 B answer fits either way).
      if (path === '/64k') targets.push({ label: NGINX_LARGE_BUFFERS, url: `http://127.0.0.1:${nginx.port}${LARGE_BUFFERS_PREFIX}${path}`, headers, expectStatus: 200, pid: nginx.pid });
      // For 11 B, where the upstream's work is a large share of the whole: the same nginx sending the
      // upstream what the gateway sends it, so the upstream reads the same headers behind both.
      else targets.push({ label: NGINX_IDENTITY, url: `http://127.0.0.1:${nginx.port}${IDENTITY_PREFIX}${path}`, headers, expectStatus: 200, pid: nginx.pid });
      const [n, u, i, r, p, w, extra] = await compare(targets, s, log);
      const b = extra?.label === NGINX_LARGE_BUFFERS ? extra : undefined;
      const ni = extra?.label === NGINX_IDENTITY ? extra : undefined;
      const vsNginx = ratio(p!, n!);
      const everything = 1 - ratio(p!, u!);
      const comparison = proxyComparison(size);
      report.comparisons.push({ name: comparison, baseline: n!.label, targets: [n!, u!, i!, r!, p!, w!, ...(extra ? [extra] : [])] });
      report.figures.push(
        { name: `${size}: portcullis / nginx`, value: fmt(vsNginx) },
        ...(b
          ? [
              { name: `${size}: portcullis / ${NGINX_LARGE_BUFFERS} (not judged)`, value: ratioWithRounds(p!, b, fmt) },
              { name: `${size}: server CPU per request, portcullis vs ${NGINX_LARGE_BUFFERS} → capacity ratio`, value: cpuFigure(p!, b) },
            ]
          : []),
        ...(ni
          ? [
              { name: `${size}: portcullis / ${NGINX_IDENTITY} (not judged)`, value: ratioWithRounds(p!, ni, fmt) },
              { name: `${size}: ${NGINX_IDENTITY} / nginx`, value: ratioWithRounds(ni, n!, fmt) },
              { name: `${size}: native relay (no auth) / ${NGINX_IDENTITY}`, value: ratioWithRounds(r!, ni, fmt) },
            ]
          : []),
        { name: `${size}: portcullis with outpost.workers: ${workerCount} / nginx`, value: fmt(ratio(w!, n!)) },
        { name: `${size}: ${workerCount} workers / one process`, value: fmt(ratio(w!, p!)) },
        { name: `${size}: portcullis / bare undici proxy with the same identity headers`, value: fmt(ratio(p!, i!)) },
        { name: `${size}: portcullis / bare undici proxy (client headers only)`, value: fmt(ratio(p!, u!)) },
        { name: `${size}: portcullis / its own native relay with the same headers, no auth`, value: fmt(ratio(p!, r!)) },
        { name: `${size}: everything portcullis adds over the bare undici proxy (client headers only)`, value: `${fmt(everything * 100, 1)} %` },
        { name: `${size}: undici proxy / nginx`, value: fmt(ratio(u!, n!)) },
        { name: `${size}: native relay / undici proxy (same headers)`, value: fmt(ratio(r!, i!)) },
        { name: `${size}: server CPU per request, portcullis vs nginx (its worker) → capacity ratio`, value: cpuFigure(p!, n!) },
        {
          name: `${size}: server CPU per request, portcullis vs the undici proxy with the same headers`,
          value: `${cpuFigure(p!, i!)} (portcullis over it: ${fmt((1 / cpuRatio(p!, i!) - 1) * 100, 1)} %)`,
        },
        {
          name: `${size}: server CPU per request, portcullis vs its native relay with the same headers → auth work by CPU`,
          value: `${cpuFigure(p!, r!)} (auth work ${fmt((1 / cpuRatio(p!, r!) - 1) * 100, 1)} %)`,
        },
      );
      report.targets.push(
        throughputTarget(`${size}: throughput vs nginx`, p!, n!, 0.7, comparison),
        overTarget(`${size}: portcullis over the bare undici proxy (same headers)`, p!, i!, comparison),
        overTarget(`${size}: auth work alone, over the same native relay without auth (same headers)`, p!, r!, comparison),
      );
    }
  } finally {
    await Promise.all([nginx.stop(), undiciProxy.stop(), identityProxy.stop(), nativeProxy.stop(), env.stopMember(workers)]);
  }
  report.notes.push(
    `Portcullis runs twice: one gateway process ("portcullis proxy"; the targets are judged on it, as in every earlier run) and one with \`outpost.workers: ${workerCount}\` (one per core: a primary and ${workerCount} node:cluster workers sharing the port; its CPU per request is the whole process tree's), shown beside it: whether workers pay on ${workerCount} cores the load generator and the upstream share too. nginx keeps one worker: at the measured rates it stays below one core.`,
    `Upstream: node:http in its own process; nginx: one worker, \`upstream { keepalive 128; }\`, HTTP/1.1 to the upstream, its default proxy buffers (8 × 4 KiB: a 64 KiB answer costs it 11 reads and 7 writes, against 3 and 2, and the load generator more reads too); "${NGINX_LARGE_BUFFERS}" is the same nginx with \`proxy_buffer_size 16k; proxy_buffers 4 64k\`, shown beside for 64 KiB and not judged: the issue names nginx proxy_pass, and its defaults are what the target is judged on; "${NGINX_IDENTITY}" is the same nginx also sending the upstream the 12 X-authentik-*, X-Forwarded-Host/Proto and X-Real-IP headers the gateway sends it for this session (as an nginx doing auth_request would; nginx leaves out the one that is empty), shown beside for 11 B and not judged: it tells how much of the gap is the upstream reading those headers, which any proxy sending them costs it;` +
      ' undici proxy: node:http + the gateway\'s upstream executor (`proxyHttp`, relay code shared with the gateway) on undici.Pool, no routing, auth or framework; native relay: the same executor on the raw keep-alive sockets + llhttp client the gateway uses for plain-HTTP upstreams (services/gateway/src/upstream-h1.ts), behind the gateway\'s own front end (services/gateway/src/front-h1.ts), as the gateway.',
    'The issue\'s target compares the gateway with a bare undici proxy that adds the same 12 X-authentik-*, X-Forwarded-* and X-Real-IP headers the gateway sent upstream for this session (read back from the upstream). Since the gateway no longer relays plain HTTP through undici, that comparison now includes the relay gained by switching clients; "auth work alone" compares with the native relay adding the same headers behind the same front end, i.e. the cost of deciding (cookie, session, headers assembled per request, metrics) by itself, as scenario 1 compares with a bare server answering the same headers. Until 2026-11-29 that baseline read its requests with node:http, slower than the gateway\'s front end by about what the auth work costs, which hid it (-16 % to 7 % then). "Everything portcullis adds" compares with the undici proxy that forwards the client\'s headers only.',
  );
  return report;
}

/** Scenario 3's baseline (the bare server, no cookie) as a load target: what `--wait-quiet` probes. */
export async function noSessionBaseline(env: Environment, fx: HttpFixtures): Promise<LoadTarget> {
  const bare = await ensureBareAuth(env, fx);
  return { label: 'bare node:http', url: `http://127.0.0.1:${bare.port}/private/page`, headers: { host: env.appHost }, expectStatus: 200, pid: bare.pid, threads: true };
}

/** Scenario 3: the unauthenticated redirect (proxy mode) and an allow-listed path (forward auth) vs the bare server. */
export async function decisionsScenario(env: Environment, fx: HttpFixtures, s: LoadSettings, log: Log): Promise<ScenarioReport> {
  const targets: LoadTarget[] = [
    await noSessionBaseline(env, fx),
    {
      label: 'portcullis redirect (302)',
      url: `http://127.0.0.1:${env.gatewayPort}/private/page?x=1`,
      headers: { host: env.appHost },
      expectStatus: 302,
      ...gatewayProcess(env),
    },
    {
      label: 'portcullis allow-listed (200)',
      url: `http://127.0.0.1:${env.gatewayPort}/outpost.goauthentik.io/auth/nginx`,
      headers: { host: env.fwdHost, 'x-original-url': `http://${env.fwdHost}/public/asset.css` },
      expectStatus: 200,
      ...gatewayProcess(env),
    },
  ];
  const [b, redirect, allow] = await compare(targets, s, log);
  return {
    id: 3,
    title: 'Unauthenticated redirect and allow-listed path',
    comparisons: [{ name: NO_SESSION, baseline: b!.label, targets: [b!, redirect!, allow!] }],
    figures: [
      { name: 'redirect / bare', value: fmt(ratio(redirect!, b!)) },
      { name: 'allow-listed / bare', value: fmt(ratio(allow!, b!)) },
      { name: 'server CPU per request, redirect vs bare → capacity ratio', value: cpuFigure(redirect!, b!) },
      { name: 'server CPU per request, allow-listed vs bare → capacity ratio', value: cpuFigure(allow!, b!) },
    ],
    // The issue: "same ratio as scenario 1" (≥ 0.80 of the bare server's throughput).
    targets: [
      throughputTarget('redirect (302): throughput vs bare node:http', redirect!, b!, 0.8, NO_SESSION),
      throughputTarget('allow-listed (200): throughput vs bare node:http', allow!, b!, 0.8, NO_SESSION),
    ],
    notes: ['Redirect: proxy-mode request without a cookie → 302 to /outpost.goauthentik.io/start. Allow-listed: forward auth (nginx flavour) of a URL matching `skip_path_regex: ^/public/`, no cookie → 200 with anonymous headers.'],
  };
}
