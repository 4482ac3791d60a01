// An IdP that is down, hangs, or comes back: 502 pages naming the issuer, bounded waits, back-off then recovery.
import { createServer, type Socket } from 'node:net';
import { getFreePort, startIdp } from '@portcullis/testkit';
import t from 'tap';
import {
  buildConfig,
  buildProvider,
  cookiesFrom,
  createRecordingLogger,
  idpClientFor,
  loginAtIdp,
  requestCallback,
  requestStart,
  startHarness,
  startTestIdp,
} from './test-harness.ts';

t.test('an IdP that refuses connections → start answers 502 naming the issuer; start() does not wait for it', async (t) => {
  const issuer = `http://127.0.0.1:${await getFreePort()}`;
  const h = await startHarness(buildConfig([buildProvider(issuer)]), { idpTimeoutMs: 1000 });
  t.teardown(() => h.close());
  const logger = createRecordingLogger();
  await h.startAuth(logger);
  const reply = await requestStart(h.bus, 'app');
  t.equal(reply.status, 502);
  t.equal(reply.page?.title, 'Identity provider unavailable');
  t.match(reply.page?.message, issuer);
  t.match(reply.page?.message, /ECONNREFUSED/);
  t.match(reply.page?.message, /\.well-known\/openid-configuration/, 'says what to check');
  t.same(reply.setCookies, []);
  t.ok(logger.lines.some((l) => l.level === 'error' && (l.o as { code?: string }).code === 'PORTCULLIS_AUTH_IDP_UNAVAILABLE'));
});

t.test('an IdP that accepts connections but never answers → 502 after the timeout, not a hang', async (t) => {
  const sockets = new Set<Socket>();
  const blackHole = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    blackHole.close();
  });
  const { port } = blackHole.address() as { port: number };
  const issuer = `http://127.0.0.1:${port}`;
  const h = await startHarness(buildConfig([buildProvider(issuer)]), { idpTimeoutMs: 1000 });
  t.teardown(() => h.close());
  const began = Date.now();
  await h.startAuth();
  t.ok(Date.now() - began < 1000, 'start() returns before discovery ends');
  const reply = await requestStart(h.bus, 'app');
  t.equal(reply.status, 502);
  t.match(reply.page?.message, /no answer within 1000 ms/);
  t.ok(Date.now() - began < 10_000, 'answered well within 10 s');
});

t.test('discovery failures back off (no new connection at once), then the IdP is used once it is back', async (t) => {
  // A TCP server that hangs up on every connection: each discovery attempt is one counted connection.
  let connections = 0;
  const hangUp = createServer((s) => {
    connections += 1;
    s.destroy();
  });
  await new Promise<void>((resolve) => hangUp.listen(0, '127.0.0.1', resolve));
  const { port } = hangUp.address() as { port: number };
  const issuer = `http://127.0.0.1:${port}`;
  const h = await startHarness(buildConfig([buildProvider(issuer)]), { idpTimeoutMs: 1000 });
  t.teardown(() => h.close());
  await h.startAuth();
  t.equal((await requestStart(h.bus, 'app')).status, 502, 'IdP down');
  const afterFirst = connections;
  t.ok(afterFirst >= 1);
  t.equal((await requestStart(h.bus, 'app')).status, 502);
  t.equal((await requestStart(h.bus, 'app')).status, 502);
  t.equal(connections, afterFirst, 'requests within the back-off do not touch the IdP');

  await new Promise<void>((resolve) => hangUp.close(() => resolve()));
  const idp = await startIdp({ clients: [idpClientFor()], port });
  t.teardown(() => idp.close());
  const deadline = Date.now() + 10_000;
  let reply = await requestStart(h.bus, 'app');
  while (reply.status !== 302 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    reply = await requestStart(h.bus, 'app');
  }
  t.equal(reply.status, 302, 'once the back-off has passed, discovery is retried and succeeds');
  t.ok(reply.location?.startsWith(`${issuer}/auth?`));
});

t.test('an IdP gone between start and callback → the callback answers 502, no session', async (t) => {
  const idp = await startTestIdp();
  const h = await startHarness(buildConfig([buildProvider(idp.issuer)]), { idpTimeoutMs: 1000 });
  t.teardown(() => h.close());
  await h.startAuth();
  const start = await requestStart(h.bus, 'app');
  const query = await loginAtIdp(h.browser, start.location!);
  await idp.close();
  const reply = await requestCallback(h.bus, { provider: 'app', query, stateCookies: cookiesFrom(start) });
  t.equal(reply.status, 502);
  t.match(reply.page?.message, /could not be reached during the token request/);
  t.equal(await h.bus.log.lastSeq(), 0);
});

t.test('a plain-http issuer that is not loopback is allowed but logged as a warning', async (t) => {
  const h = await startHarness(buildConfig([buildProvider('http://idp.example.invalid')]), { idpTimeoutMs: 500 });
  t.teardown(() => h.close());
  const logger = createRecordingLogger();
  await h.startAuth(logger);
  t.ok(logger.lines.some((l) => l.level === 'warn' && /plain http/.test(l.m)));

  const loopback = await startHarness(buildConfig([buildProvider('http://127.0.0.1:9')]), { idpTimeoutMs: 500 });
  t.teardown(() => loopback.close());
  const quiet = createRecordingLogger();
  await loopback.startAuth(quiet);
  t.notOk(quiet.lines.some((l) => /plain http/.test(l.m)), 'no warning for a loopback issuer');
});
