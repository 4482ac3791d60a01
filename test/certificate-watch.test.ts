// `run` reloads certificate files that changed without a SIGHUP (outpost.certificate_watch_interval_seconds): in place, through a
// Kubernetes Secret's `..data` symlink swap, in file-config and shared-config mode; a broken change keeps what is served, logged once.
import { type ChildProcess, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { createSelfSignedCertificate, getFreePort, startNatsServer, startRedisServer } from '@portcullis/testkit';
import t, { type Test } from 'tap';
import { BIN, type PortcullisProcess, ROOT, spawnPortcullis } from './support/portcullis-process.ts';

const HOST = 'app.localhost';

type Pair = { cert: string; key: string };
type LogLine = { level: string; msg: string; trigger?: string; changed?: string[]; problems?: string[]; certificates?: Array<{ sha256: string; cert_file: string }>; outcome?: string };

async function waitFor<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const found = await Promise.resolve().then(check).catch(() => undefined);
    if (found !== undefined && found !== false) return found as T;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;

/** The SHA-256 fingerprint of the certificate a new TLS connection for HOST gets. */
async function served(port: number): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: HOST, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

/** `portcullis_tls_certificate_expiry_timestamp_seconds` for HOST. */
async function expiryMetric(metrics: number): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
  const m = /^portcullis_tls_certificate_expiry_timestamp_seconds\{[^}]*host="app\.localhost"[^}]*\} (\S+)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Spawns `portcullis run` (killed at teardown); `lines(from)` parses its JSON log lines written after `from` (an offset of `out()`). */
function spawnRun(t: Test, args: string[]): PortcullisProcess & { lines: (from?: number) => LogLine[] } {
  const run = spawnPortcullis(t, ['run', ...args]);
  const lines = (from = 0) =>
    run
      .out()
      .slice(from)
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine);
  return { ...run, lines };
}

async function stop(t: Test, child: ChildProcess): Promise<void> {
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM still ends the process (the poller keeps nothing alive)');
}

/** The outpost and provider blocks: provider `app` on HOST over HTTPS with the given files; `outpost` adds outpost keys. */
function configYaml(o: { http: number; https: number; metrics: number; certFile: string; keyFile: string; outpost: string; cluster?: string }): string {
  return `
log_level: debug
outpost: { listen: { http: "127.0.0.1:${o.http}", https: "127.0.0.1:${o.https}", metrics: "127.0.0.1:${o.metrics}" }${o.outpost} }
${o.cluster ?? ''}
providers:
  - name: app
    mode: forward_single
    external_host: https://${HOST}:${o.https}
    issuer: http://127.0.0.1:1/
    client_id: app
    client_secret: secret
    cookie_secret: certificate-watch-cookie-secret-0123456789
    tls: { cert_file: ${o.certFile}, key_file: ${o.keyFile} }
`;
}

/** Writes a pair the way the kubelet updates a mounted Secret: a new `..<version>` directory, `..data` re-pointed by rename, the old one removed. */
function writeLikeKubelet(dir: string, pair: Pair, version: string): void {
  const fresh = join(dir, `..${version}`);
  mkdirSync(fresh);
  writeFileSync(join(fresh, 'tls.crt'), pair.cert);
  writeFileSync(join(fresh, 'tls.key'), pair.key);
  const data = join(dir, '..data');
  const old = existsSync(data) ? join(dir, readlinkSync(data)) : undefined;
  if (!old) {
    // The first version: the names the config uses are created once, pointing through ..data.
    symlinkSync('..data/tls.crt', join(dir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(dir, 'tls.key'));
  }
  symlinkSync(`..${version}`, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), data);
  if (old) rmSync(old, { recursive: true });
}

t.test('file config: certificate files replaced in place are served without a signal; garbage, a key that does not fit, an expired or a missing certificate keep what is served, each logged once; fixed files are picked up', async (t) => {
  const dir = t.testdir({ certs: {} });
  const [certFile, keyFile] = [join(dir, 'certs', 'cert.pem'), join(dir, 'certs', 'key.pem')];
  const install = (pair: Pair) => {
    writeFileSync(certFile, pair.cert);
    writeFileSync(keyFile, pair.key);
  };
  const first = createSelfSignedCertificate({ commonName: 'first', altNames: [HOST], notAfter: new Date('2040-05-06T07:08:09Z') });
  install(first);
  const [http, https, metrics] = [await getFreePort(), await getFreePort(), await getFreePort()];
  const configFile = join(dir, 'portcullis.yaml');
  writeFileSync(configFile, configYaml({ http, https, metrics, certFile, keyFile, outpost: ', certificate_watch_interval_seconds: 1' }));
  const { child, out, lines } = spawnRun(t, ['--config', configFile]);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${metrics}/ready`)).status === 200, 'ready');
  const watching = await waitFor(() => lines().find((l) => l.msg.startsWith('watching the TLS certificate files')), 'the watcher');
  t.match(watching, { files: [certFile, keyFile], interval_seconds: 1 }, 'the start names the files watched and the interval');
  t.equal(await served(https), fingerprintOf(first.cert));

  // A renewal written in place (certbot without a deploy hook), and no SIGHUP.
  const renewed = createSelfSignedCertificate({ commonName: 'renewed', altNames: [HOST], notAfter: new Date('2041-02-03T04:05:06Z') });
  let mark = out().length;
  install(renewed);
  const reloaded = await waitFor(() => lines(mark).find((l) => l.msg.startsWith('TLS certificates reloaded from their files')), 'the reload line');
  t.match(reloaded, { trigger: 'certificate files changed', changed: [certFile, keyFile] }, 'the line says why and which files changed');
  t.equal(reloaded.certificates?.[0]?.sha256, fingerprintOf(renewed.cert), 'and names the certificate now served');
  t.equal(await served(https), fingerprintOf(renewed.cert), 'a new connection gets the renewed certificate');
  t.equal(await expiryMetric(metrics), Date.parse('2041-02-03T04:05:06Z') / 1000, 'the expiry metric follows');

  /** Writes `change`, waits for its rejection line and three more polls of the same files, and returns that line. */
  const rejected = async (change: () => void, what: string): Promise<LogLine> => {
    const from = out().length;
    change();
    const line = await waitFor(() => lines(from).find((l) => l.msg.startsWith('TLS certificate reload rejected')), `the rejection of ${what}`);
    await waitFor(() => {
      const after = lines(from);
      return after.slice(after.indexOf(after.find((l) => l.msg.startsWith('TLS certificate reload rejected'))!)).filter((l) => l.msg === 'TLS certificate files polled').length >= 3;
    }, `more polls of ${what}`);
    t.equal(lines(from).filter((l) => l.msg.startsWith('TLS certificate reload rejected')).length, 1, `${what}: logged once, not at every poll`);
    t.equal(line.level, 'error', `${what}: at level error`);
    t.match(line.msg, /the certificates in use are kept; the files are tried again when they change \(checked every 1 s\) or on SIGHUP$/);
    t.equal(await served(https), fingerprintOf(renewed.cert), `${what}: the renewed certificate is still served`);
    t.equal(await expiryMetric(metrics), Date.parse('2041-02-03T04:05:06Z') / 1000, `${what}: the metric still describes it`);
    return line;
  };
  const garbage = await rejected(() => writeFileSync(certFile, 'not a certificate\n'), 'garbage');
  t.match(garbage.problems?.join('\n'), `providers[0].tls: ${certFile} and ${keyFile} are not a PEM certificate and private key`, 'the problem names the files and the fix');
  const other = createSelfSignedCertificate({ commonName: 'other', altNames: [HOST] });
  const mismatch = await rejected(() => writeFileSync(certFile, other.cert), 'a key that does not fit');
  t.match(mismatch.problems?.join('\n'), `providers[0].tls.key_file: ${keyFile} is not the private key of the certificate in ${certFile}`);
  const expired = createSelfSignedCertificate({ altNames: [HOST], notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') });
  const late = await rejected(() => install(expired), 'an expired certificate');
  t.match(late.problems?.join('\n'), `providers[0].tls.cert_file: the certificate in ${certFile} expired on 2021-01-01T00:00:00Z`);
  const missing = await rejected(() => unlinkSync(certFile), 'a missing file');
  t.match(missing.problems?.join('\n'), `providers[0].tls.cert_file: cannot read ${certFile}`);

  // The rotation fixed.
  const fixed = createSelfSignedCertificate({ commonName: 'fixed', altNames: [HOST], notAfter: new Date('2042-01-01T00:00:00Z') });
  mark = out().length;
  install(fixed);
  await waitFor(() => lines(mark).find((l) => l.msg.startsWith('TLS certificates reloaded from their files')), 'the reload of the fixed files');
  t.equal(await served(https), fingerprintOf(fixed.cert), 'the fixed certificate is served');
  t.equal(await expiryMetric(metrics), Date.parse('2042-01-01T00:00:00Z') / 1000);
  await stop(t, child);
});

t.test('shared-config mode: a Kubernetes Secret update (the ..data symlink swapped) is served without a signal, and after a push naming other files those are watched', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const redis = await startRedisServer();
  t.teardown(() => redis.stop());
  const [http, https, metrics] = [await getFreePort(), await getFreePort(), await getFreePort()];
  const dir = t.testdir({ secret: {}, other: {} });
  const secret = join(dir, 'secret');
  const first = createSelfSignedCertificate({ commonName: 'first', altNames: [HOST] });
  writeLikeKubelet(secret, first, '2026_01_01');
  const cluster = `cluster:\n  nats: { servers: ["${nats.url}"], config_bucket: portcullis-config }\n  redis: { url: "${redis.url}" }`;
  const yaml = (certFile: string, keyFile: string) => configYaml({ http, https, metrics, certFile, keyFile, cluster, outpost: ', certificate_watch_interval_seconds: 1' });
  const configFile = join(dir, 'portcullis.yaml');
  writeFileSync(configFile, yaml(join(secret, 'tls.crt'), join(secret, 'tls.key')));
  const push = (file: string) => spawnSync(BIN, ['config', 'push', file, '--config', configFile], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const pushed = push(configFile);
  t.equal(pushed.status, 0, pushed.stderr);

  const { child, out, lines } = spawnRun(t, ['--config', configFile, '--services', 'all']);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${metrics}/ready`)).status === 200, 'ready');
  await waitFor(() => out().includes('following the shared config in NATS KV'), 'the shared-config watcher');
  t.equal(await served(https), fingerprintOf(first.cert));

  // cert-manager renewed the Secret; the kubelet swaps ..data (the names in the config are unchanged symlinks).
  const renewed = createSelfSignedCertificate({ commonName: 'renewed', altNames: [HOST] });
  let mark = out().length;
  writeLikeKubelet(secret, renewed, '2026_02_01');
  const reloaded = await waitFor(() => lines(mark).find((l) => l.msg.startsWith('TLS certificates reloaded from their files')), 'the reload line');
  t.match(reloaded, { trigger: 'certificate files changed', changed: [join(secret, 'tls.crt'), join(secret, 'tls.key')] });
  t.equal(await served(https), fingerprintOf(renewed.cert), 'a new connection gets the renewed certificate');

  // A document naming other files: those are the ones watched from now on.
  const [certFile, keyFile] = [join(dir, 'other', 'cert.pem'), join(dir, 'other', 'key.pem')];
  const second = createSelfSignedCertificate({ commonName: 'second', altNames: [HOST] });
  writeFileSync(certFile, second.cert);
  writeFileSync(keyFile, second.key);
  writeFileSync(join(dir, 'next.yaml'), yaml(certFile, keyFile));
  mark = out().length;
  const pushedNext = push(join(dir, 'next.yaml'));
  t.equal(pushedNext.status, 0, pushedNext.stderr);
  await waitFor(() => lines(mark).find((l) => l.msg.startsWith('shared config applied')), 'the pushed document applied');
  t.equal(await served(https), fingerprintOf(second.cert));
  const third = createSelfSignedCertificate({ commonName: 'third', altNames: [HOST] });
  mark = out().length;
  writeFileSync(certFile, third.cert);
  writeFileSync(keyFile, third.key);
  const again = await waitFor(() => lines(mark).find((l) => l.msg.startsWith('TLS certificates reloaded from their files')), 'the reload of the new files');
  t.match(again, { changed: [certFile, keyFile] }, 'the files the pushed document names are watched');
  t.equal(await served(https), fingerprintOf(third.cert));
  await stop(t, child);
});

t.test('file config: certificate_watch_interval_seconds: 0 reloads nothing without a SIGHUP; a reload that sets an interval starts watching', async (t) => {
  const dir = t.testdir({ certs: {} });
  const [certFile, keyFile] = [join(dir, 'certs', 'cert.pem'), join(dir, 'certs', 'key.pem')];
  const install = (pair: Pair) => {
    writeFileSync(certFile, pair.cert);
    writeFileSync(keyFile, pair.key);
  };
  const first = createSelfSignedCertificate({ commonName: 'first', altNames: [HOST] });
  install(first);
  const [http, https, metrics] = [await getFreePort(), await getFreePort(), await getFreePort()];
  const configFile = join(dir, 'portcullis.yaml');
  const yaml = (seconds: number) => configYaml({ http, https, metrics, certFile, keyFile, outpost: `, certificate_watch_interval_seconds: ${seconds}` });
  writeFileSync(configFile, yaml(0));
  const { child, out, lines } = spawnRun(t, ['--config', configFile]);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${metrics}/ready`)).status === 200, 'ready');
  await waitFor(() => out().includes('portcullis started'), 'the start line');

  const renewed = createSelfSignedCertificate({ commonName: 'renewed', altNames: [HOST] });
  install(renewed);
  // Long enough for a 1 s poll and its settling to have reloaded them, were the files watched.
  await new Promise((r) => setTimeout(r, 4000));
  t.equal(await served(https), fingerprintOf(first.cert), 'the old certificate is still served');
  t.notOk(
    lines().some((l) => l.msg.startsWith('watching the TLS certificate files') || l.msg === 'TLS certificate files polled'),
    'nothing watches or polls the files',
  );

  // SIGHUP reloads them (and a config that now asks for watching).
  let mark = out().length;
  writeFileSync(configFile, yaml(1));
  child.kill('SIGHUP');
  await waitFor(() => lines(mark).find((l) => l.msg.startsWith('config reloaded')), 'the SIGHUP reload');
  t.equal(await served(https), fingerprintOf(renewed.cert), 'SIGHUP reloads the files');
  const later = createSelfSignedCertificate({ commonName: 'later', altNames: [HOST] });
  mark = out().length;
  install(later);
  const reloaded = await waitFor(() => lines(mark).find((l) => l.msg.startsWith('TLS certificates reloaded from their files')), 'the reload line');
  t.equal(reloaded.trigger, 'certificate files changed', 'with the interval set by the reload, the files are watched');
  t.equal(await served(https), fingerprintOf(later.cert));
  await stop(t, child);
});
