// The admin CLI against a real cluster of separate processes: `portcullis sessions list | revoke | rebuild`,
// and a rebuild of the Redis projection that never lets a signed-out session through while gateways serve.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNatsBus } from '@portcullis/bus';
import { streamMaxAgeSeconds } from '@portcullis/cli';
import { loadConfig } from '@portcullis/config';
import { createEvent } from '@portcullis/events';
import { verifySessionCookie } from '@portcullis/protocol';
import { createRedisStore } from '@portcullis/store';
import { type CookieJar, loginThroughIdp, subjectFor } from '@portcullis/testkit';
import t from 'tap';
import { ALICE, COOKIE_SECRET, type Cluster, startCluster } from './cluster-harness.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'node_modules', '.bin', 'portcullis');
const BOB = { username: 'bob', password: 'bob-password' };
const CAROL = { username: 'carol', password: 'carol-password' };

interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `portcullis <args>` as a user would; resolves when it exits. */
function portcullis(args: string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Events a session process has handled since it started (its `portcullis_events_projected_total`, all types). */
async function eventsProjected(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  let sum = 0;
  for (const m of text.matchAll(/^portcullis_events_projected_total\{[^}]*\} (\d+)$/gm)) sum += Number(m[1]);
  return sum;
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface SessionEntry {
  session_id: string;
  sub: string;
  username: string | null;
  provider: string;
  created_at: string;
  expires_at: string;
  seq: number;
}

async function listJson(c: Cluster, t: import('tap').Test, user?: string): Promise<SessionEntry[]> {
  const r = await portcullis(['sessions', 'list', '--config', c.configFile, '--json', ...(user ? ['--user', user] : [])]);
  t.equal(r.status, 0, `sessions list exits 0\n${r.stderr}`);
  return JSON.parse(r.stdout) as SessionEntry[];
}

/**
 * A copy of the session cookie in `jar`: a gateway that refuses a session also deletes its cookie, and
 * a probe must keep sending the revoked cookie (not nothing) to prove it is refused.
 */
function copyOf(c: Cluster, jar: CookieJar): CookieJar {
  const cookies = jar.cookiesFor(`${c.app}/`);
  if (cookies.length === 0) throw new Error('the jar holds no cookie for the app');
  const copy = c.newJar();
  for (const k of cookies) copy.setCookie(`${c.app}/`, `${k.name}=${k.value}; Path=${k.path}`);
  return copy;
}

/** The status gateway `i` answers for the session in `jar` (200 accepted, 302 sent to log in), leaving `jar` as it was. */
async function statusOn(c: Cluster, i: number, jar: CookieJar): Promise<number> {
  return (await c.browserOn(i, copyOf(c, jar)).request(`${c.app}/`)).status;
}

/** The session id the jar's session cookie names (its signature checked). */
function sessionIdIn(c: Cluster, jar: CookieJar): string {
  for (const k of jar.cookiesFor(`${c.app}/`)) {
    const value = verifySessionCookie(COOKIE_SECRET, k.value);
    if (value) return value.sessionId;
  }
  throw new Error('the jar holds no session cookie for the app');
}

/**
 * Logs `user` in through gateway `i`. Under load a gateway may wait longer than its read-your-writes
 * bound (2 s) for the projection to reach a fresh cookie; it then treats the cookie as stale and logs
 * the browser in again, which leaves the first session live but in nobody's hands. The counts this
 * file asserts are exact, so such an orphan (a session of `user` created by this login that the jar
 * does not hold) is revoked here, and reported as a comment.
 */
async function login(c: Cluster, t: import('tap').Test, i: number, jar: CookieJar, user: { username: string; password: string }): Promise<void> {
  const before = new Set((await listJson(c, t, subjectFor(user.username))).map((s) => s.session_id));
  const { chain } = await loginThroughIdp(c.browserOn(i, jar), `${c.app}/`, user);
  const callbacks = chain.filter((step) => step.url.includes('/outpost.goauthentik.io/callback')).length;
  if (callbacks <= 1) return;
  const held = sessionIdIn(c, jar);
  for (const s of await listJson(c, t, subjectFor(user.username))) {
    if (before.has(s.session_id) || s.session_id === held) continue;
    t.comment(`${user.username}'s login went through ${callbacks} callbacks (the projection was slow): revoking the orphan session #${s.seq}`);
    const r = await portcullis(['sessions', 'revoke', '--config', c.configFile, '--session', s.session_id]);
    t.equal(r.status, 0, r.stderr);
  }
}

/** The status every gateway answers for the session in `jar`. */
async function statusOnEvery(c: Cluster, jar: CookieJar): Promise<number[]> {
  return Promise.all(c.gateways().map((_, i) => statusOn(c, i, jar)));
}

t.test('cluster: sessions list, revoke and rebuild through the admin CLI', async (t) => {
  const c = await startCluster({ gateway: 3, auth: 1, session: 2 });
  t.teardown(() => c.close());
  const aliceSub = subjectFor('alice');
  const bobSub = subjectFor('bob');
  const jars = { alice1: c.newJar(), alice2: c.newJar(), bob1: c.newJar(), carol: c.newJar(), bob2: c.newJar() };
  await login(c, t, 0, jars.alice1, ALICE);
  await login(c, t, 1, jars.alice2, ALICE);
  await login(c, t, 2, jars.bob1, BOB);

  t.test('sessions list --json prints one JSON array with every live session and its fields', async (t) => {
    const all = await listJson(c, t);
    t.equal(all.length, 3);
    for (const s of all) {
      t.match(s, { session_id: String, sub: String, provider: 'app', seq: Number });
      for (const field of ['created_at', 'expires_at'] as const) {
        t.equal(new Date(s[field]).toISOString(), s[field], `${field} is ISO-8601`);
      }
    }
    t.same(all.map((s) => s.username).sort(), ['alice', 'alice', 'bob']);
    t.same(
      (await listJson(c, t, aliceSub)).map((s) => s.sub),
      [aliceSub, aliceSub],
      '--user lists only alice’s two sessions',
    );
    const table = await portcullis(['sessions', 'list', '--config', c.configFile]);
    t.equal(table.status, 0);
    t.match(table.stdout, /^SESSION\s+USER/);
    t.match(table.stdout, /3 live sessions\n$/);
  });

  t.test('revoke --user: when the command returns, every gateway denies both of alice’s sessions; bob still works', async (t) => {
    for (const jar of [jars.alice1, jars.alice2, jars.bob1]) t.same(await statusOnEvery(c, jar), [200, 200, 200], 'accepted before');
    const r = await portcullis(['sessions', 'revoke', '--config', c.configFile, '--user', aliceSub]);
    t.equal(r.status, 0, r.stderr);
    t.same(await statusOnEvery(c, jars.alice1), [302, 302, 302], 'alice session 1 denied everywhere');
    t.same(await statusOnEvery(c, jars.alice2), [302, 302, 302], 'alice session 2 denied everywhere');
    t.same(await statusOnEvery(c, jars.bob1), [200, 200, 200], 'bob untouched');
    t.match(r.stdout, /revoked every session of user [0-9a-f]+: 2 live sessions \(UserSignedOut #\d+\)/);
    t.match(r.stdout, /holds on 3 live gateways and in the Redis projection: propagated in \d+ ms/);
    t.same(await listJson(c, t, aliceSub), [], 'alice has no live session left');
  });

  t.test('revoke --session ends one session everywhere; an unknown id is recorded and reported as not live', async (t) => {
    const [bob] = await listJson(c, t, bobSub);
    t.ok(bob, 'bob’s session is listed');
    const r = await portcullis(['sessions', 'revoke', '--config', c.configFile, '--session', bob!.session_id]);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, new RegExp(`revoked session ${bob!.session_id} of user ${bobSub} \\(SessionEnded #\\d+\\)`));
    t.same(await statusOnEvery(c, jars.bob1), [302, 302, 302], 'bob’s session denied everywhere');
    const unknown = await portcullis(['sessions', 'revoke', '--config', c.configFile, '--session', 'no-such-session']);
    t.equal(unknown.status, 0, unknown.stderr);
    t.match(unknown.stdout, /session no-such-session was not live; SessionEnded #\d+ recorded anyway/);
  });

  t.test('rebuild after the projection is lost: no signed-out session is accepted during it, every live one works after', async (t) => {
    await login(c, t, 1, jars.carol, CAROL);
    t.same(await statusOnEvery(c, jars.carol), [200, 200, 200], 'carol logged in');

    // Thousands of events between carol's SessionStarted and her sign-out: a long window in which a
    // half-replayed projection would hold her session as live.
    const loaded = loadConfig({ file: c.configFile, env: {} });
    if (!loaded.ok || !loaded.config.cluster) throw new Error('the harness config does not load');
    const bus = await createNatsBus({ nats: loaded.config.cluster.nats, name: 'cluster-admin-test', streamMaxAgeSeconds: streamMaxAgeSeconds(loaded.config) });
    t.teardown(() => bus.close());
    const store = await createRedisStore({ redis: loaded.config.cluster.redis });
    t.teardown(() => store.close());
    for (let batch = 0; batch < 15; batch++) {
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          bus.log.append(createEvent('UserSignedOut', { sub: `dummy-${batch}-${i}`, provider: 'app', reason: 'load for the rebuild test' })),
        ),
      );
    }
    const out = await c.browserOn(0, copyOf(c, jars.carol)).request(`${c.app}/outpost.goauthentik.io/sign_out`);
    t.equal(out.status, 302, 'carol signed out');
    t.same(await statusOnEvery(c, jars.carol), [302, 302, 302], 'carol denied everywhere');
    await login(c, t, 0, jars.bob2, BOB);
    t.same(await statusOnEvery(c, jars.bob2), [200, 200, 200], 'bob logged in again');

    // The projection is lost — once EVERY session replica has handled the whole log: a lagging one would
    // otherwise refill the emptied Redis with the tail it has not handled yet.
    const last = await bus.log.lastSeq();
    t.equal(await store.waitForApplied(last, 60_000), true, 'the projection caught up with the log');
    for (const m of c.members.filter((m) => m.role === 'session')) {
      await waitFor(async () => (await eventsProjected(m.metrics)) >= last, `session[${m.index}] to handle #${last}`);
    }
    const flushed = spawnSync('redis-cli', ['-p', String(c.redis.port), 'FLUSHALL'], { encoding: 'utf8' });
    t.equal(flushed.stdout.trim(), 'OK', 'redis FLUSHALL');
    // A gateway restarted now has nothing cached and no memory of revocations: it relies on Redis alone.
    const fresh = c.gateways()[2]!;
    await c.stop(fresh);
    await c.start(fresh);
    // The session services notice the lost projection and rebuild it themselves (a live session may then be
    // accepted again at once): what must hold throughout is that a signed-out one never is.
    t.not(await statusOn(c, 2, jars.carol), 200, 'with Redis emptied, a gateway relying on Redis alone does not accept a signed-out session');

    const signedOut = [jars.alice1, jars.alice2, jars.bob1, jars.carol];
    let rebuildDone = false;
    let probes = 0;
    const accepted: string[] = [];
    const hammer = c.gateways().flatMap((_, i) =>
      signedOut.map(async (jar, j) => {
        while (!rebuildDone) {
          const status = await statusOn(c, i, jar);
          if (rebuildDone) break;
          probes += 1;
          if (status === 200) accepted.push(`gateway ${i}, signed-out session ${j}`);
        }
      }),
    );
    const startedAt = performance.now();
    let rebuild = await portcullis(['sessions', 'rebuild', '--config', c.configFile]);
    // The session services notice the lost projection too and may be rebuilding it already: the CLI then
    // says so and changes nothing; once theirs is done, the CLI's own rebuild (drop and replay) runs.
    for (let n = 0; n < 120 && rebuild.status !== 0 && /another rebuild of the projection is in progress/.test(rebuild.stderr); n++) {
      await new Promise((r) => setTimeout(r, 500));
      rebuild = await portcullis(['sessions', 'rebuild', '--config', c.configFile]);
    }
    const tookMs = performance.now() - startedAt;
    rebuildDone = true;
    await Promise.all(hammer);

    t.equal(rebuild.status, 0, rebuild.stderr);
    const counts = /(\d+) events replayed, (\d+) live sessions?, (\d+) users with a sign-out watermark/.exec(rebuild.stdout);
    t.ok(counts, `the final count is printed: ${rebuild.stdout}`);
    t.ok(Number(counts?.[1]) > 3000, 'every event replayed');
    t.equal(Number(counts?.[2]), 1, 'one live session: bob’s second');
    t.equal(Number(counts?.[3]), 3002, 'alice, carol and the 3000 dummy users have a watermark');
    t.match(rebuild.stderr, /rebuilding the Redis projection/);
    t.ok(probes > 24, `gateways were probed during the ${Math.round(tookMs)} ms rebuild (${probes} requests)`);
    t.same(accepted, [], 'no signed-out session was accepted by any gateway during the rebuild');

    t.same(await statusOnEvery(c, jars.bob2), [200, 200, 200], 'the live session works everywhere after the rebuild');
    for (const jar of signedOut) t.same(await statusOnEvery(c, jar), [302, 302, 302], 'revoked sessions stay denied');
    await c.stop(fresh);
    await c.start(fresh);
    t.equal(await statusOn(c, 2, jars.bob2), 200, 'a gateway started after the rebuild accepts the live session');
    for (const jar of signedOut) t.equal(await statusOn(c, 2, jar), 302, 'and refuses the revoked ones');

    // The session services resumed after the rebuild: a new login is projected and accepted everywhere.
    const again = c.newJar();
    await login(c, t, 1, again, ALICE);
    t.same(await statusOnEvery(c, again), [200, 200, 200], 'a login after the rebuild works on every gateway');
    const listed = await listJson(c, t);
    t.equal(listed.length, 2, `bob’s and alice’s new session are listed: ${JSON.stringify(listed)}`);
  });
});

t.test('sessions list without a cluster: block exits 2', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'embedded.yaml');
  writeFileSync(
    file,
    `
outpost:
  listen: { http: "127.0.0.1:9000", https: null, metrics: null }
providers:
  - name: app
    mode: proxy
    external_host: http://app.localhost:9000
    internal_host: http://127.0.0.1:1
    issuer: http://127.0.0.1:1/
    client_id: app
    client_secret: secret
    cookie_secret: cli-test-cookie-secret-0123456789abcdef
`,
  );
  const r = await portcullis(['sessions', 'list', '--config', file]);
  t.equal(r.status, 2);
  t.match(r.stderr, /needs a cluster: block/);
  t.equal(r.stdout, '');
});
