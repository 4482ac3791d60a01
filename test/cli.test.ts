// The `portcullis` command as users run it: check-config, run, env overrides, SIGTERM.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { createSelfSignedCertificate, getFreePort, startNatsServer, startRedisServer, startUpstream } from '@portcullis/testkit';
import t, { type Test } from 'tap';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'node_modules', '.bin', 'portcullis');

const VALID = (http: number, metrics: number) => `
outpost:
  listen: { http: "127.0.0.1:${http}", https: null, metrics: "127.0.0.1:${metrics}" }
providers:
  - name: app
    mode: proxy
    external_host: http://app.localhost:${http}
    internal_host: http://127.0.0.1:1
    issuer: http://127.0.0.1:1/
    client_id: app
    client_secret: secret
    cookie_secret: cli-test-cookie-secret-0123456789abcdef
`;

function runCli(args: string[], env: Record<string, string> = {}) {
  return spawnSync(BIN, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
}

async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`portcullis exited with ${child.exitCode}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/outpost.goauthentik.io/ping`);
      if (r.status === 204) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('portcullis did not start');
}

t.test('the bin is linked by npm ci and prints its version', async (t) => {
  const r = runCli(['--version']);
  t.equal(r.status, 0);
  t.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
});

t.test('check-config: a valid file → exit 0', async (t) => {
  const dir = t.testdir({ 'ok.yaml': VALID(9000, 9300) });
  const r = runCli(['check-config', join(dir, 'ok.yaml')]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /configuration ok/);
});

t.test('check-config: every problem listed as "<path>: <reason> — <fix>", exit 2', async (t) => {
  const dir = t.testdir({
    'bad.yaml': `
outpost:
  listen: { http: "nowhere" }
providers:
  - name: app
    mode: proxi
    external_host: ftp://x
    issuer: https://idp.example/
    client_id: app
    client_secret: s
    cookie_secret: short
    skip_path_regex: "^/ok/\\n(unclosed"
`,
  });
  const r = runCli(['check-config', join(dir, 'bad.yaml')]);
  t.equal(r.status, 2);
  const lines = r.stderr.split('\n').filter((l) => l.includes(' — '));
  for (const path of ['outpost.listen.http', 'providers[0].mode', 'providers[0].external_host', 'providers[0].cookie_secret', 'providers[0].skip_path_regex']) {
    t.ok(
      lines.some((l) => l.startsWith(path)),
      `${path} listed`,
    );
  }
  for (const l of lines) t.match(l, /^[^:]+: .+ — .+$/, 'one line per problem');
});

t.test('check-config: a mistyped option or a second file is a usage error (exit 2), never a stack trace or a file left unchecked', async (t) => {
  const dir = t.testdir({ 'ok.yaml': VALID(9000, 9300), 'bad.yaml': 'providers: []\n' });
  const typo = runCli(['check-config', '--cofig', join(dir, 'ok.yaml')]);
  t.equal(typo.status, 2, typo.stderr);
  t.match(typo.stderr, /Unknown option '--cofig'/);
  t.match(typo.stderr, /portcullis check-config FILE/, 'the usage is shown');
  t.notMatch(typo.stderr, /\n\s+at /, 'no stack trace');

  const two = runCli(['check-config', join(dir, 'ok.yaml'), join(dir, 'bad.yaml')]);
  t.equal(two.status, 2, 'a second file is not silently ignored');
  t.match(two.stderr, /one FILE/);
  t.notMatch(two.stdout, /configuration ok/);

  const both = runCli(['check-config', join(dir, 'ok.yaml'), '--config', join(dir, 'bad.yaml')]);
  t.equal(both.status, 2, 'FILE and --config naming different files is ambiguous');
});

t.test('an env var naming no config key is a config error', async (t) => {
  const dir = t.testdir({ 'ok.yaml': VALID(9000, 9300) });
  const r = runCli(['check-config', join(dir, 'ok.yaml')], { PORTCULLIS_OUTPOST__LISTN__HTTP: '127.0.0.1:1' });
  t.equal(r.status, 2);
  t.match(r.stderr, /PORTCULLIS_OUTPOST__LISTN__HTTP/);
});

/** VALID with an HTTPS listener serving `cert` for the provider (written to `dir`). */
function withCertificate(dir: string, http: number, https: number, metrics: number, cert: { cert: string; key: string }): string {
  writeFileSync(join(dir, 'cert.pem'), cert.cert);
  writeFileSync(join(dir, 'key.pem'), cert.key);
  const file = join(dir, 'portcullis.yaml');
  writeFileSync(
    file,
    `${VALID(http, metrics).replace('https: null', `https: "127.0.0.1:${https}"`)}    tls: { cert_file: ${join(dir, 'cert.pem')}, key_file: ${join(dir, 'key.pem')} }\n`,
  );
  return file;
}

/** Spawns `portcullis <args>` (killed at teardown if still running); `out()` is everything it wrote to stdout so far. */
function spawnRun(t: Test, args: string[], env?: NodeJS.ProcessEnv): { child: ChildProcess; out: () => string } {
  const child = spawn(BIN, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  let stdout = '';
  child.stdout!.on('data', (d) => {
    stdout += d.toString();
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, out: () => stdout };
}

/** Starts `run` on `file`, waits until it is ready, stops it with SIGTERM, and returns its config warnings (JSON log lines). */
async function configWarningsOfRun(t: Test, file: string, metrics: number): Promise<Array<{ level: string; msg: string; problem?: string }>> {
  const { child, out } = spawnRun(t, ['run', '--config', file]);
  await waitForPing(metrics, child);
  let ready = 0;
  for (let i = 0; i < 200 && ready !== 200; i++) {
    ready = (await fetch(`http://127.0.0.1:${metrics}/ready`)).status;
    if (ready !== 200) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(ready, 200, 'it starts and serves');
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exit, 0);
  return out()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: string; msg: string; problem?: string })
    .filter((l) => l.msg === 'config warning');
}

t.test('an expired certificate: check-config warns with the file, the date and the fix, and run starts (other hosts and plain HTTP keep working) and logs it', async (t) => {
  const dir = t.testdir({});
  const expired = createSelfSignedCertificate({ altNames: ['app.localhost'], notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-03-04T05:06:07Z') });
  const [http, https, metrics] = [await getFreePort(), await getFreePort(), await getFreePort()];
  const file = withCertificate(dir, http, https, metrics, expired);
  const check = runCli(['check-config', file]);
  t.equal(check.status, 0, check.stderr);
  t.match(
    check.stderr,
    `warning: providers[0].tls.cert_file: the certificate in ${join(dir, 'cert.pem')} expired on 2021-03-04T05:06:07Z (notAfter), so every client refuses the connections it serves — renew the certificate`,
  );
  const warnings = await configWarningsOfRun(t, file, metrics);
  t.match(warnings, [{ level: 'warn', problem: /providers\[0\]\.tls\.cert_file: .* expired on 2021-03-04T05:06:07Z/ }]);
});

t.test('a certificate expiring within 14 days or not naming the host: check-config warns (exit 0), run logs each as a JSON warning and serves', async (t) => {
  const dir = t.testdir({});
  const soon = createSelfSignedCertificate({ altNames: ['other.localhost'], days: 5 });
  const [http, https, metrics] = [await getFreePort(), await getFreePort(), await getFreePort()];
  const file = withCertificate(dir, http, https, metrics, soon);
  const check = runCli(['check-config', file]);
  t.equal(check.status, 0, check.stderr);
  t.match(check.stderr, new RegExp(`warning: providers\\[0\\]\\.tls\\.cert_file: the certificate in ${join(dir, 'cert.pem')} expires on \\S+, in [45] days`));
  t.match(check.stderr, /warning: providers\[0\]\.tls\.cert_file: .* does not cover app\.localhost, the host of providers\[0\]\.external_host \(it names DNS:other\.localhost\)/);
  const warnings = await configWarningsOfRun(t, file, metrics);
  t.equal(warnings.length, 2, 'both warnings are in the log, where log shipping and alerting see them');
  t.match(warnings, [
    { level: 'warn', problem: /expires on \S+, in [45] days/ },
    { level: 'warn', problem: /does not cover app\.localhost/ },
  ]);
});


/** The samples of `portcullis_tls_certificate_expiry_timestamp_seconds` in a scrape, as "provider host" → value. */
async function certificateExpiries(metrics: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^portcullis_tls_certificate_expiry_timestamp_seconds\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    out[`${labels.provider} ${labels.host}`] = Number(m[2]);
  }
  return out;
}

/** The peer certificate's SHA-256 fingerprint on a TLS connection to `port` for `servername`. */
async function servedFingerprint(port: number, servername: string): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

t.test('file config: the certificate expiry metric is set at start and follows a SIGHUP rotation, whose log line names the new certificate; a certificate no longer served loses its series', async (t) => {
  const dir = t.testdir({});
  const notAfter1 = new Date('2040-05-06T07:08:09Z');
  const notAfter2 = new Date('2041-02-03T04:05:06Z');
  const first = createSelfSignedCertificate({ commonName: 'first', altNames: ['app.localhost'], notAfter: notAfter1 });
  const [http, https, metrics] = [await getFreePort(), await getFreePort(), await getFreePort()];
  const file = withCertificate(dir, http, https, metrics, first);
  const child = spawn(BIN, ['run', '--config', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout!.on('data', (d) => {
    stdout += d.toString();
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await waitForPing(metrics, child);
  for (let i = 0; i < 200 && !stdout.includes('portcullis started'); i++) await new Promise((r) => setTimeout(r, 50));
  t.same(await certificateExpiries(metrics), { 'app app.localhost': notAfter1.getTime() / 1000 }, 'at start: the notAfter of the certificate served, in Unix seconds');

  // A rotation writes the renewed files (same paths) and signals the process.
  const renewed = createSelfSignedCertificate({ commonName: 'renewed', altNames: ['app.localhost'], notAfter: notAfter2 });
  writeFileSync(join(dir, 'cert.pem'), renewed.cert);
  writeFileSync(join(dir, 'key.pem'), renewed.key);
  const renewedSha256 = new X509Certificate(renewed.cert).fingerprint256;
  let mark = stdout.length;
  child.kill('SIGHUP');
  const reloadLine = async () => {
    for (let i = 0; i < 300; i++) {
      const line = stdout
        .slice(mark)
        .split('\n')
        .find((l) => l.includes('"config reloaded'));
      if (line) return JSON.parse(line) as { trigger: string; msg: string; certificates?: unknown };
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no "config reloaded" line in:\n${stdout.slice(mark)}`);
  };
  const reloaded = await reloadLine();
  t.match(reloaded.msg, /^config reloaded; TLS certificates served \(1\)/, 'a reload line, with the number of certificates served');
  t.same(
    reloaded.certificates,
    [{ provider: 'app', host: 'app.localhost', cert_file: join(dir, 'cert.pem'), not_after: notAfter2.toISOString(), sha256: renewedSha256 }],
    'the log line names the certificate now served: provider, host, file, notAfter and the new SHA-256 fingerprint',
  );
  t.equal(await servedFingerprint(https, 'app.localhost'), renewedSha256, 'and that is the certificate a new connection gets');
  t.same(await certificateExpiries(metrics), { 'app app.localhost': notAfter2.getTime() / 1000 }, 'the metric now has the renewed notAfter');

  // The provider's certificate taken out of the config: nothing is served for it, so no series.
  mark = stdout.length;
  writeFileSync(file, readFileSync(file, 'utf8').replace(/^ {4}tls: .*\n/m, ''));
  child.kill('SIGHUP');
  t.same((await reloadLine()).certificates, [], 'the reload line lists no certificate');
  t.same(await certificateExpiries(metrics), {}, 'the series of the certificate no longer served is gone');

  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exit, 0);
});

t.test('run with an invalid config exits 2 without binding a port', async (t) => {
  const port = await getFreePort();
  const dir = t.testdir({ 'bad.yaml': VALID(port, port + 1).replace('cookie_secret: cli-test-cookie-secret-0123456789abcdef', 'cookie_secret: x') });
  const r = runCli(['run', '--config', join(dir, 'bad.yaml')]);
  t.equal(r.status, 2);
  t.match(r.stderr, /providers\[0\]\.cookie_secret/);
});

t.test('run: serves, takes env overrides, logs JSON on stdout, SIGTERM → exit 0', async (t) => {
  const [http, metrics, envHttp] = [await getFreePort(), await getFreePort(), await getFreePort()];
  const dir = t.testdir({});
  const file = join(dir, 'portcullis.yaml');
  writeFileSync(file, VALID(http, metrics));
  const { child, out } = spawnRun(t, ['run', '--services', 'all'], { ...process.env, PORTCULLIS_CONFIG: file, PORTCULLIS_OUTPOST__LISTEN__HTTP: `127.0.0.1:${envHttp}` });
  await waitForPing(metrics, child);
  const ping = await fetch(`http://127.0.0.1:${envHttp}/outpost.goauthentik.io/ping`);
  t.equal(ping.status, 204, 'the env override moved the HTTP listener');
  const metricsText = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
  t.match(metricsText, /authentik_outpost_info\{/);
  const redirect = await fetch(`http://127.0.0.1:${envHttp}/x`, { headers: { host: `app.localhost:${http}` }, redirect: 'manual' });
  t.equal(redirect.status, 302);
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exit, 0, 'graceful shutdown exits 0');
  const first = out().split('\n').find((l) => l.trim() !== '');
  t.ok(first, 'logged something');
  t.match(JSON.parse(first!), { level: String, service: 'portcullis', msg: String }, 'JSON log lines');
});

t.test('run in cluster mode with NATS unreachable exits 1 naming the servers to check', async (t) => {
  const dead = await getFreePort();
  const dir = t.testdir({ 'c.yaml': `${VALID(await getFreePort(), await getFreePort())}cluster: { nats: { servers: ["nats://127.0.0.1:${dead}"] } }\n` });
  const r = runCli(['run', '--config', join(dir, 'c.yaml'), '--services', 'gateway']);
  t.equal(r.status, 1);
  t.match(r.stderr, `127.0.0.1:${dead}`);
});

t.test('run in cluster mode against a Redis that evicts keys (maxmemory-policy allkeys-lru) warns at start naming noeviction', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const redis = await startRedisServer({ args: ['--maxmemory', '50mb', '--maxmemory-policy', 'allkeys-lru'] });
  t.teardown(() => redis.stop());
  const metrics = await getFreePort();
  const dir = t.testdir({
    'c.yaml': `${VALID(await getFreePort(), metrics)}cluster: { nats: { servers: ["${nats.url}"] }, redis: { url: "${redis.url}" } }\n`,
  });
  const { child, out } = spawnRun(t, ['run', '--config', join(dir, 'c.yaml'), '--services', 'session']);
  await waitForPing(metrics, child);
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exit, 0);
  const warning = out()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: string; msg: string })
    .find((l) => l.msg.includes('maxmemory-policy allkeys-lru'));
  t.ok(warning, 'a start-up line names the eviction policy');
  t.equal(warning?.level, 'warn');
  t.match(warning?.msg, /Set maxmemory-policy noeviction/);
});

t.test('SIGHUP while run is still starting (connecting to NATS) does not end it: it starts, then reloads', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const redis = await startRedisServer();
  t.teardown(() => redis.stop());
  // A gate in front of NATS that holds the first connection until released: the process is then starting.
  let connected!: () => void;
  const reached = new Promise<void>((r) => (connected = r));
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const gate = createServer((client) => {
    client.on('error', () => {});
    connected();
    void released.then(() => {
      const upstream = connect(Number(new URL(nats.url).port), '127.0.0.1');
      upstream.on('error', () => {});
      client.pipe(upstream).pipe(client);
    });
  });
  await new Promise<void>((r) => gate.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => gate.close());
  const metrics = await getFreePort();
  const dir = t.testdir({
    'c.yaml': `${VALID(await getFreePort(), metrics)}cluster: { nats: { servers: ["nats://127.0.0.1:${(gate.address() as AddressInfo).port}"] }, redis: { url: "${redis.url}" } }\n`,
  });
  const { child, out } = spawnRun(t, ['run', '--config', join(dir, 'c.yaml'), '--services', 'session']);
  const logged = async (msg: string) => {
    for (let i = 0; i < 300 && !out().includes(msg); i++) await new Promise((r) => setTimeout(r, 50));
    return out().includes(msg);
  };
  await reached;
  child.kill('SIGHUP');
  t.ok(await logged('SIGHUP during start-up'), 'the SIGHUP is noted while starting');
  release();
  t.ok(await logged('portcullis started'), 'it starts once NATS answers');
  t.ok(await logged('config reloaded'), 'then applies the SIGHUP');
  t.equal(child.signalCode, null, 'not ended by the signal');
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exit, 0);
});

t.test('embedded mode refuses a subset of services', async (t) => {
  const dir = t.testdir({ 'ok.yaml': VALID(9000, 9300) });
  const r = runCli(['run', '--config', join(dir, 'ok.yaml'), '--services', 'gateway']);
  t.equal(r.status, 2);
  t.match(r.stderr, /cluster/);
});

t.test('--services with an unknown role → exit 2 naming the choices', async (t) => {
  const r = runCli(['run', '--services', 'gateway,frontend']);
  t.equal(r.status, 2);
  t.match(r.stderr, /gateway, auth, session/);
});

/** `run` in front of a real upstream, with `/__stream` allowed without login; resolves once /ready says 200. */
async function runServing(t: Test) {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const [http, metrics] = [await getFreePort(), await getFreePort()];
  const dir = t.testdir({});
  const file = join(dir, 'portcullis.yaml');
  writeFileSync(file, `${VALID(http, metrics).replace('http://127.0.0.1:1\n', `${upstream.url}\n`)}    skip_path_regex: "^/__stream"\n`);
  const { child, out } = spawnRun(t, ['run', '--config', file]);
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  for (let i = 0; ; i++) {
    if (i > 200) throw new Error('portcullis did not become ready');
    const ready = await fetch(`http://127.0.0.1:${metrics}/ready`).then((r) => r.status, () => 0);
    if (ready === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // A download that takes about 2 s: in flight when the signals arrive.
  const download = fetch(`http://127.0.0.1:${http}/__stream?chunks=4&delay=500`, { headers: { host: `app.localhost:${http}` } })
    .then(async (r) => `${r.status} ${(await r.text()).split('\n').filter(Boolean).length} lines`)
    .catch((err: Error) => `failed: ${err.message}`);
  await new Promise((r) => setTimeout(r, 300));
  return { child, exit, download, metrics, http, log: out };
}

t.test('a second SIGTERM or SIGINT during the graceful stop does not kill the process: in-flight requests still finish, exit 0', async (t) => {
  for (const signals of [['SIGTERM', 'SIGTERM'], ['SIGINT', 'SIGINT'], ['SIGINT', 'SIGTERM']] as const) {
    await t.test(signals.join(' then '), async (t) => {
      const run = await runServing(t);
      // As under `npx portcullis run` (npm forwards the signal the terminal or systemd also sent to node),
      // or an operator pressing Ctrl-C again.
      run.child.kill(signals[0]);
      await new Promise((r) => setTimeout(r, 200));
      run.child.kill(signals[1]);
      t.equal(await run.download, '200 4 lines', 'the in-flight download finished');
      t.same(await run.exit, { code: 0, signal: null }, 'exit 0, not killed by the signal');
    });
  }
});

t.test('once SIGTERM arrives /ready answers 503 (the HTTP listener no longer accepts), while in-flight requests finish', async (t) => {
  const run = await runServing(t);
  run.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  const refused = await fetch(`http://127.0.0.1:${run.http}/outpost.goauthentik.io/ping`).then(
    (r) => `answered ${r.status}`,
    () => 'refused',
  );
  t.equal(refused, 'refused', 'new connections to the HTTP listener are refused');
  const ready = await fetch(`http://127.0.0.1:${run.metrics}/ready`);
  t.equal(ready.status, 503, 'a load balancer polling /ready takes the process out of rotation');
  t.match(await ready.json(), { status: 'not ready', process: 'stopping' });
  t.equal(await run.download, '200 4 lines', 'the in-flight download finished');
  t.same(await run.exit, { code: 0, signal: null });
});

t.test('a listen address in use: exit 1 naming the setting and the fix', async (t) => {
  const { createServer } = await import('node:net');
  for (const key of ['http', 'https', 'metrics'] as const) {
    await t.test(`outpost.listen.${key}`, async (t) => {
      const ports = { http: await getFreePort(), https: await getFreePort(), metrics: await getFreePort() };
      const squatter = createServer();
      await new Promise<void>((resolve) => squatter.listen(ports[key], '127.0.0.1', resolve));
      t.teardown(() => squatter.close());
      const dir = t.testdir({
        'p.yaml': VALID(ports.http, ports.metrics).replace('https: null', `https: "127.0.0.1:${ports.https}"`),
      });
      const r = runCli(['run', '--config', join(dir, 'p.yaml')]);
      t.equal(r.status, 1);
      t.match(r.stderr, `outpost.listen.${key}: 127.0.0.1:${ports[key]} is already in use`);
      t.match(r.stderr, new RegExp(`— .*PORTCULLIS_OUTPOST__LISTEN__${key.toUpperCase()}`), 'the fix names the setting to change');
    });
  }
});
