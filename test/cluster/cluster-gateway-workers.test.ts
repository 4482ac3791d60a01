// Gateway workers (outpost.workers: 2) in a real cluster: one gateway process whose primary forks two workers sharing its port.
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { loginThroughIdp } from '@portcullis/testkit';
import t from 'tap';
import { BIN, ROOT } from '../support/portcullis-process.ts';
import { ALICE, type Cluster, type Member, startCluster } from './cluster-harness.ts';

/** A GET on a connection of its own: node:cluster hands each new connection to the next worker in turn. */
function getOnNewConnection(port: number, host: string, path: string, cookie: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { host, cookie } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

async function waitFor<T>(what: string, check: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const got = await check().catch(() => null);
    if (got) return got;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The pids the primary logged for its workers, from its latest "gateway workers started" line. */
function workerPids(m: Member): number[] {
  const lines = m.output().split('\n').filter((l) => l.includes('"gateway workers started"'));
  return (JSON.parse(lines.at(-1) ?? '{}') as { pids?: number[] }).pids ?? [];
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Runs `portcullis run` on the cluster's config until it exits by itself. */
function runToExit(c: Cluster, services: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const child = spawn(BIN, ['run', '--config', c.configFile, '--services', services], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out })));
}

const readyOf = async (m: Member) => {
  const r = await fetch(`http://127.0.0.1:${m.metrics}/ready`);
  return { status: r.status, body: (await r.json()) as Record<string, string> };
};

t.test('two gateway workers behind one port', async (t) => {
  const c: Cluster = await startCluster({ gateway: 1, auth: 1, session: 1, env: (m) => (m.role === 'gateway' ? { PORTCULLIS_OUTPOST__WORKERS: '2' } : undefined) });
  t.teardown(() => c.close());
  const gw = c.gateways()[0]!;
  const pids = await waitFor('the workers to start', async () => (workerPids(gw).length === 2 ? workerPids(gw) : null));
  t.equal(new Set(pids).size, 2, 'two worker processes');
  t.notOk(pids.includes(gw.child.pid!), 'neither is the primary');

  const ready = await waitFor('ready', async () => {
    const r = await readyOf(gw);
    return r.status === 200 ? r : null;
  });
  t.equal(ready.body['workers'], '2/2 ready', "/ready on the primary's metrics listener counts the workers");
  t.equal(ready.body['nats'], 'connected', 'and shows their dependencies');

  const jar = c.newJar();
  const browser = c.browserOn(0, jar);
  await loginThroughIdp(browser, `${c.app}/`, ALICE);
  const cookie = browser
    .cookies(`${c.app}/`)
    .map((x) => `${x.name}=${x.value}`)
    .join('; ');
  // Eight new connections alternate between the two workers: each accepts the session.
  const before = await Promise.all(Array.from({ length: 8 }, () => getOnNewConnection(gw.http, c.appHost, '/', cookie)));
  t.same(before, Array(8).fill(200), 'every worker accepts the session');

  const out = await browser.request(`${c.app}/outpost.goauthentik.io/sign_out`);
  t.equal(out.status, 302, 'signed out');
  const after = await Promise.all(Array.from({ length: 8 }, () => getOnNewConnection(gw.http, c.appHost, '/', cookie)));
  t.same(after, Array(8).fill(302), 'from the answer on, every worker denies it');

  const metrics = await (await fetch(`http://127.0.0.1:${gw.metrics}/metrics`)).text();
  t.match(metrics, /^portcullis_nats_connected 1$/m, 'connection states are not summed over the workers');
  const outcomes = [...metrics.matchAll(/^portcullis_auth_decisions_total\{[^}]*outcome="authenticated"[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  t.ok(outcomes >= 8, `decisions are summed over the workers (${outcomes} authenticated)`);

  t.test('a worker killed is started again, and /ready says so meanwhile', async (t) => {
    process.kill(pids[0]!, 'SIGKILL');
    const notReady = await waitFor('/ready to notice', async () => {
      const r = await readyOf(gw);
      return r.status === 503 ? r : null;
    });
    t.match(notReady.body['workers'], /^1\/2 ready$/);
    const meanwhile = await fetch(`http://127.0.0.1:${gw.metrics}/metrics`);
    t.equal(meanwhile.status, 200, 'metrics are served meanwhile, from the worker left');
    t.match(await meanwhile.text(), /^portcullis_nats_connected 1$/m);
    await waitFor('the restart', async () => gw.output().includes('"gateway worker started again"'));
    t.match(gw.output(), /"gateway worker exited: starting it again in 1 s"/, 'the exit is logged');
    const again = await waitFor('ready again', async () => {
      const r = await readyOf(gw);
      return r.status === 200 ? r : null;
    });
    t.equal(again.body['workers'], '2/2 ready');
    const served = await Promise.all(Array.from({ length: 4 }, () => getOnNewConnection(gw.http, c.appHost, '/', cookie)));
    t.same(served, Array(4).fill(302), 'the new worker knows the session is gone too');
  });

  t.test('SIGHUP reaches every worker: each reloads the config', async (t) => {
    const reloadsBy = () =>
      new Set(
        gw
          .output()
          .split('\n')
          .filter((l) => l.includes('"config reloaded"') && l.includes('"trigger":"SIGHUP"'))
          .map((l) => (JSON.parse(l) as { worker?: number }).worker),
      );
    gw.child.kill('SIGHUP');
    const by = await waitFor('both workers to reload', async () => (reloadsBy().size === 2 ? reloadsBy() : null));
    t.same([...by].sort(), [0, 1]);
    t.match(gw.output(), /"SIGHUP: passed on to every gateway worker that has started"/);
    t.equal(gw.child.exitCode, null, 'still running');
  });

  t.test('workers refuse a process that also runs auth or session, naming the fix', async (t) => {
    const { code, out } = await runToExit(c, 'all', { PORTCULLIS_OUTPOST__WORKERS: '2' });
    t.equal(code, 2);
    t.match(out, /outpost.workers: 2 runs gateway workers only — start this process with --services gateway/);
  });

  t.test('a worker that cannot bind the port stops the others: the primary exits non-zero with the reason', async (t) => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    t.teardown(() => blocker.close());
    const taken = (blocker.address() as net.AddressInfo).port;
    const { code, out } = await runToExit(c, 'gateway', {
      PORTCULLIS_OUTPOST__WORKERS: '2',
      PORTCULLIS_OUTPOST__LISTEN__HTTP: `127.0.0.1:${taken}`,
      PORTCULLIS_OUTPOST__LISTEN__METRICS: 'null',
    });
    t.not(code, 0);
    t.match(out, /outpost\.listen\.http: 127\.0\.0\.1:\d+ is already in use/, "the worker's reason is printed");
    t.match(out, /a gateway worker failed to start: stopping the others/);
  });

  t.test('SIGTERM stops the primary and every worker, exit 0', async (t) => {
    const code = await c.stop(gw, 'SIGTERM');
    t.equal(code, 0);
    t.same(workerPids(gw).filter(alive), [], 'no worker left behind');
  });
});

