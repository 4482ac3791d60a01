// With the config shared over NATS KV, SIGHUP re-reads the certificate files (a certbot deploy hook) into the live HTTPS listener,
// and a pushed document naming other certificate files is applied and logged with the certificates it serves.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TLSSocket, connect } from 'node:tls';
import { createSelfSignedCertificate, getFreePort, startNatsServer, startRedisServer } from '@portcullis/testkit';
import t, { type Test } from 'tap';
import { BIN, ROOT, spawnPortcullis } from './support/portcullis-process.ts';

const HOST = 'app.localhost';

async function waitFor(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await Promise.resolve().then(check).catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The value of `portcullis_tls_certificate_expiry_timestamp_seconds` for the provider `app` on HOST, or undefined without that series. */
async function expiryMetric(metrics: number): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
  const m = /^portcullis_tls_certificate_expiry_timestamp_seconds\{([^}]*)\} (\S+)$/m.exec(text);
  if (!m || !m[1]!.includes('provider="app"') || !m[1]!.includes(`host="${HOST}"`)) return undefined;
  return Number(m[2]);
}

/** A TLS connection to the HTTPS listener for HOST (SNI), kept open; `get` sends one keep-alive request on it. */
async function openTls(port: number): Promise<{ socket: TLSSocket; fingerprint: string; get(path: string): Promise<string> }> {
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: HOST, rejectUnauthorized: false }, () => resolve(s));
    s.once('error', reject);
  });
  return {
    socket,
    fingerprint: socket.getPeerX509Certificate()!.fingerprint256,
    get: (path) =>
      new Promise<string>((resolve, reject) => {
        let head = '';
        const onData = (d: Buffer) => {
          head += d.toString('latin1');
          if (head.includes('\r\n\r\n')) {
            socket.off('data', onData);
            resolve(head.split('\r\n')[0]!);
          }
        };
        socket.on('data', onData);
        socket.once('error', reject);
        socket.write(`GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      }),
  };
}

/** The config of the test process: provider `app` on HOST over HTTPS with the given certificate files, following the bucket. */
function sharedConfigYaml(o: { nats: string; redis: string; http: number; https: number; metrics: number; certFile: string; keyFile: string }): string {
  return `
outpost: { listen: { http: "127.0.0.1:${o.http}", https: "127.0.0.1:${o.https}", metrics: "127.0.0.1:${o.metrics}" } }
cluster:
  nats: { servers: ["${o.nats}"], config_bucket: portcullis-config }
  redis: { url: "${o.redis}" }
providers:
  - name: app
    mode: forward_single
    external_host: https://${HOST}:${o.https}
    issuer: http://127.0.0.1:1/
    client_id: app
    client_secret: secret
    cookie_secret: shared-cert-test-cookie-secret-0123456789
    tls: { cert_file: ${o.certFile}, key_file: ${o.keyFile} }
`;
}


/** A nats-server and a redis-server (stopped with `t`), free ports for the three listeners, and a test directory. */
async function startBackends(t: Test) {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const redis = await startRedisServer();
  t.teardown(() => redis.stop());
  const [http, https, metrics] = [await getFreePort(), await getFreePort(), await getFreePort()];
  return { nats, redis, http, https, metrics, dir: t.testdir({}) };
}

t.test('shared-config mode: SIGHUP swaps in renewed certificate files without dropping connections, and the expiry metric follows; a bad or expired file keeps the old certificate (and its metric)', async (t) => {
  const { nats, redis, http, https, metrics, dir } = await startBackends(t);
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  const install = (pair: { cert: string; key: string }) => {
    writeFileSync(certFile, pair.cert);
    writeFileSync(keyFile, pair.key);
  };
  const first = createSelfSignedCertificate({ commonName: 'first', altNames: [HOST], notAfter: new Date('2040-05-06T07:08:09Z') });
  install(first);
  const configFile = join(dir, 'portcullis.yaml');
  writeFileSync(configFile, sharedConfigYaml({ nats: nats.url, redis: redis.url, http, https, metrics, certFile, keyFile }));
  const pushed = spawnSync(BIN, ['config', 'push', configFile, '--config', configFile], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  t.equal(pushed.status, 0, pushed.stderr);

  const { child, out } = spawnPortcullis(t, ['run', '--config', configFile, '--services', 'all']);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${metrics}/ready`)).status === 200, 'ready');
  t.match(out(), /starting on the shared config/, 'the process follows the document in NATS KV');

  const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;
  const before = await openTls(https);
  t.equal(before.fingerprint, fingerprintOf(first.cert), 'the first certificate is served');
  t.equal(await before.get('/outpost.goauthentik.io/ping'), 'HTTP/1.1 204 No Content');
  t.equal(await expiryMetric(metrics), Date.parse('2040-05-06T07:08:09Z') / 1000, "the expiry metric holds the first certificate's notAfter");

  // A rotation tool renews the files and signals the process (certbot --deploy-hook "kill -HUP <pid>").
  const renewed = createSelfSignedCertificate({ commonName: 'renewed', altNames: [HOST], notAfter: new Date('2041-02-03T04:05:06Z') });
  install(renewed);
  let mark = out().length;
  child.kill('SIGHUP');
  await waitFor(() => out().slice(mark).includes('TLS certificates reloaded'), 'the reload log line');
  t.match(out().slice(mark), certFile, 'the log names the file it reloaded');
  t.match(out().slice(mark), /"provider":"app"/, 'and the provider');
  t.match(out().slice(mark), fingerprintOf(renewed.cert), 'and the new certificate (its SHA-256 fingerprint)');
  const after = await openTls(https);
  t.equal(after.fingerprint, fingerprintOf(renewed.cert), 'a new connection gets the renewed certificate');
  t.equal(await before.get('/outpost.goauthentik.io/ping'), 'HTTP/1.1 204 No Content', 'the connection opened before the reload still answers');
  t.equal(child.exitCode, null, 'the process still runs');
  t.equal(await expiryMetric(metrics), Date.parse('2041-02-03T04:05:06Z') / 1000, "the expiry metric follows: the renewed certificate's notAfter");

  // A broken rotation: a key that does not belong to the certificate, then an expired certificate.
  const other = createSelfSignedCertificate({ commonName: 'other', altNames: [HOST] });
  writeFileSync(certFile, other.cert);
  mark = out().length;
  child.kill('SIGHUP');
  await waitFor(() => out().slice(mark).includes('certificate reload rejected'), 'the rejection log line');
  t.match(out().slice(mark), /providers\[0\]\.tls\.key_file: .*key\.pem is not the private key of the certificate in .*cert\.pem/, 'the log names the problem and the fix');
  t.equal((await openTls(https)).fingerprint, fingerprintOf(renewed.cert), 'the renewed certificate is still served');

  const expired = createSelfSignedCertificate({ altNames: [HOST], notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') });
  install(expired);
  mark = out().length;
  child.kill('SIGHUP');
  await waitFor(() => out().slice(mark).includes('certificate reload rejected'), 'the rejection log line');
  t.match(out().slice(mark), /expired on 2021-01-01T00:00:00Z/);
  t.equal((await openTls(https)).fingerprint, fingerprintOf(renewed.cert), 'an expired certificate is not swapped in either');
  t.equal(await expiryMetric(metrics), Date.parse('2041-02-03T04:05:06Z') / 1000, 'the expiry metric still describes the certificate served, not the rejected files');

  before.socket.destroy();
  after.socket.destroy();
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});

t.test('shared-config mode: a pushed document naming another certificate is applied, and its log line names the certificates now served (provider, host, cert_file, not_after, sha256), as a file-config reload does', async (t) => {
  const { nats, redis, http, https, metrics, dir } = await startBackends(t);
  const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;
  const first = createSelfSignedCertificate({ commonName: 'first', altNames: [HOST], notAfter: new Date('2040-05-06T07:08:09Z') });
  writeFileSync(join(dir, 'cert.pem'), first.cert);
  writeFileSync(join(dir, 'key.pem'), first.key);
  const ports = { nats: nats.url, redis: redis.url, http, https, metrics };
  const configFile = join(dir, 'portcullis.yaml');
  writeFileSync(configFile, sharedConfigYaml({ ...ports, certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') }));
  const push = (file: string) => spawnSync(BIN, ['config', 'push', file, '--config', configFile], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const pushedFirst = push(configFile);
  t.equal(pushedFirst.status, 0, pushedFirst.stderr);

  const { child, out } = spawnPortcullis(t, ['run', '--config', configFile, '--services', 'all']);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${metrics}/ready`)).status === 200, 'ready');
  await waitFor(() => out().includes('following the shared config in NATS KV'), 'the shared-config watcher');
  t.equal((await openTls(https)).fingerprint, fingerprintOf(first.cert), 'the first certificate is served');

  // The next document names other files (a new certificate installed beside the old one).
  const notAfter = new Date('2041-02-03T04:05:06Z');
  const second = createSelfSignedCertificate({ commonName: 'second', altNames: [HOST], notAfter });
  const [certFile, keyFile] = [join(dir, 'second-cert.pem'), join(dir, 'second-key.pem')];
  writeFileSync(certFile, second.cert);
  writeFileSync(keyFile, second.key);
  const next = join(dir, 'next.yaml');
  writeFileSync(next, sharedConfigYaml({ ...ports, certFile, keyFile }));
  const mark = out().length;
  const pushed = push(next);
  t.equal(pushed.status, 0, pushed.stderr);
  let applied: { msg: string; bucket?: string; providers?: string[]; certificates?: unknown } | undefined;
  await waitFor(() => {
    // The watcher applies (and logs) the document it finds at start too, possibly after `mark`: the
    // line of the pushed document is the one naming its certificate file.
    const line = out()
      .slice(mark)
      .split('\n')
      .find((l) => l.includes('"shared config applied') && l.includes(JSON.stringify(certFile)));
    applied = line ? JSON.parse(line) : undefined;
    return applied !== undefined;
  }, 'the "shared config applied" line');
  t.match(applied!.msg, /^shared config applied; TLS certificates served \(1\): new connections get them, open ones keep theirs$/, 'the line counts the certificates served');
  t.match(applied, { bucket: 'portcullis-config', providers: ['app'] });
  t.same(
    applied!.certificates,
    [{ provider: 'app', host: HOST, cert_file: certFile, not_after: notAfter.toISOString(), sha256: fingerprintOf(second.cert) }],
    'and names the certificate the pushed document serves: provider, host, file, notAfter and its SHA-256 fingerprint',
  );
  t.equal((await openTls(https)).fingerprint, fingerprintOf(second.cert), 'which is the certificate a new connection gets');

  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});
