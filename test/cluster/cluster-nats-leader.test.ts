// Killing the JetStream stream leader in the middle of a sign-out storm: a sign-out either succeeds and holds
// on every gateway from its response on, or answers 503; after re-election the retried ones succeed and none is lost.
import t from 'tap';
import { startCluster } from './cluster-harness.ts';
import { GatewayClients, type LoggedIn, type Outcome, loginVia, makeUsers, sleep, startHammer, tally } from './cluster-traffic.ts';
import { restartNatsServer, serverNamed, waitForStreamLeader } from './nats-admin.ts';

const USERS = makeUsers(12);
const SESSIONS_PER_USER = 2;
/** Sign-outs start this far apart, and the leader dies this long after the first: some before, most during the election. */
const SIGN_OUT_SPACING_MS = 60;
const KILL_AFTER_MS = 200;
const SUCCESS = new Set<Outcome>([200, 302]);

interface SignOut {
  username: string;
  gw: number;
  attempts: Array<{ sentAt: number; doneAt: number; outcome: Outcome }>;
}

t.test('cluster: the stream leader is SIGKILLed during a sign-out storm', async (t) => {
  const c = await startCluster({ users: USERS });
  t.teardown(() => c.close());
  const clients = new GatewayClients(c);
  t.teardown(() => clients.close());
  const gateways = c.gateways().map((_, i) => i);

  // Two sessions per user, logged in through different gateways, four users at a time.
  const sessions: Array<LoggedIn & { key: string }> = [];
  for (let i = 0; i < USERS.length; i += 4) {
    const batch = USERS.slice(i, i + 4).flatMap((u, j) =>
      Array.from({ length: SESSIONS_PER_USER }, (_, s) => loginVia(c, (i + j + s) % gateways.length, u).then((l) => ({ ...l, key: `${u.username}#${s}` }))),
    );
    sessions.push(...(await Promise.all(batch)));
  }
  const before: Outcome[] = [];
  for (const s of sessions) for (const gw of gateways) before.push(await clients.get(gw, s.cookie));
  t.same(tally(before.map((outcome) => ({ gw: 0, key: '', sentAt: 0, doneAt: 0, outcome }))), { 200: sessions.length * gateways.length }, 'every session is accepted on every gateway before the storm');

  const leaderName = await waitForStreamLeader(c.nats);
  const leader = serverNamed(c.nats, leaderName);
  const hammer = startHammer(clients, { gateways, targets: sessions, loopsPerGateway: 2, maxRequests: 30_000, maxMs: 60_000 });
  await sleep(100);

  const signOuts: SignOut[] = USERS.map((u, k) => ({ username: u.username, gw: k % gateways.length, attempts: [] }));
  const cookieOf = (username: string) => sessions.find((s) => s.username === username)!.cookie;
  const attempt = async (so: SignOut): Promise<Outcome> => {
    const sentAt = performance.now();
    const outcome = await clients.signOut(so.gw, cookieOf(so.username));
    so.attempts.push({ sentAt, doneAt: performance.now(), outcome });
    return outcome;
  };
  const stormStarted = performance.now();
  const storm = signOuts.map(async (so, k) => {
    await sleep(k * SIGN_OUT_SPACING_MS);
    await attempt(so);
  });
  await sleep(KILL_AFTER_MS);
  leader.kill();
  const killedAt = performance.now();
  await Promise.all(storm);
  const first = signOuts.map((so) => so.attempts[0]!);
  t.comment(
    `leader ${leaderName} killed ${Math.round(killedAt - stormStarted)} ms into the storm; first answers: ${JSON.stringify(
      first.map((a) => `${a.outcome}@${Math.round(a.doneAt - killedAt)}ms`),
    )}`,
  );
  t.same(
    first.filter((a) => !SUCCESS.has(a.outcome) && a.outcome !== 503),
    [],
    'every sign-out during the storm answered a success (302 to the IdP / 200 page) or 503',
  );
  t.ok(
    first.some((a) => a.sentAt > killedAt),
    'some sign-outs were sent after the leader died',
  );

  // Recovery: a new leader, the dead node back, then the failed sign-outs retried (bounded).
  const newLeader = await waitForStreamLeader(c.nats, { not: leaderName, skip: [leader], timeoutMs: 20_000 });
  t.not(newLeader, leaderName, `a new stream leader was elected (${newLeader})`);
  await restartNatsServer(c.nats, leader);
  for (const so of signOuts) {
    for (let n = 0; n < 10 && !SUCCESS.has(so.attempts.at(-1)!.outcome); n++) {
      if (n > 0) await sleep(1000);
      await attempt(so);
    }
  }
  t.same(
    signOuts.filter((so) => !SUCCESS.has(so.attempts.at(-1)!.outcome)).map((so) => `${so.username}: ${so.attempts.map((a) => a.outcome).join(',')}`),
    [],
    `every sign-out that failed succeeds when retried after recovery (${signOuts.filter((so) => so.attempts.length > 1).length} retried)`,
  );
  await sleep(500);
  const probes = await hammer.stop();

  // From each successful sign-out's response on, no gateway accepted either session of that user.
  const answeredAt = new Map(signOuts.map((so) => [so.username, so.attempts.find((a) => SUCCESS.has(a.outcome))?.doneAt ?? Number.POSITIVE_INFINITY]));
  const after = probes.filter((p) => p.sentAt > answeredAt.get(p.key.split('#')[0]!)!);
  const accepted = after.filter((p) => p.outcome === 200);
  t.ok(after.length >= signOuts.length * gateways.length, `the hammer kept probing after the sign-outs (${after.length} probes: ${JSON.stringify(tally(after))})`);
  t.same(
    accepted.slice(0, 10).map((p) => `${p.key} on gateway ${p.gw} ${Math.round(p.sentAt - answeredAt.get(p.key.split('#')[0]!)!)} ms after its sign-out answered`),
    [],
    `no request sent after a successful sign-out was accepted (${accepted.length} were)`,
  );

  // In the end every session of every user is denied on every gateway.
  const denied: string[] = [];
  for (const s of sessions) {
    for (const gw of gateways) {
      const outcome = await clients.get(gw, s.cookie);
      if (outcome !== 302) denied.push(`${s.key} on gateway ${gw}: ${outcome}`);
    }
  }
  t.same(denied, [], 'every signed-out session is denied (302 to login) on every gateway');

  // The recovered cluster still logs people in, and every gateway accepts the new session.
  const again = await loginVia(c, 0, USERS[0]!);
  const fresh: Outcome[] = [];
  for (const gw of gateways) fresh.push(await clients.get(gw, again.cookie));
  t.same(fresh, gateways.map(() => 200), 'a login after recovery is accepted on every gateway');
});
