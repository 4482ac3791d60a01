// Restarting every process of one kind in turn (session, then auth, then gateway) while traffic runs: nobody
// logged in is logged out, no revoked session comes back, every SIGTERM exits 0, and logins work with an auth replica down.
import t from 'tap';
import { type Member, startCluster } from './cluster-harness.ts';
import { GatewayClients, type LoggedIn, type Probe, loginVia, makeUsers, sleep, startHammer, tally } from './cluster-traffic.ts';

const USERS = makeUsers(7, 'roll');
/** Logged in throughout: must never be logged out. */
const STAYING = USERS.slice(0, 3);
/** Signed out during the restarts (one during each kind). */
const LEAVING = USERS.slice(3, 6);
/** Logs in while an auth replica is down. */
const LATE = USERS[6]!;

t.test('cluster: rolling restart of session, auth and gateway processes under traffic', async (t) => {
  const c = await startCluster({ users: USERS });
  t.teardown(() => c.close());
  const clients = new GatewayClients(c);
  t.teardown(() => clients.close());
  const gateways = c.gateways().map((_, i) => i);

  const staying: LoggedIn[] = await Promise.all(STAYING.map((u, i) => loginVia(c, i % gateways.length, u)));
  const leaving: LoggedIn[] = await Promise.all(LEAVING.map((u, i) => loginVia(c, (i + 1) % gateways.length, u)));
  const hammer = startHammer(clients, {
    gateways,
    targets: [...staying, ...leaving].map((s) => ({ key: s.username, cookie: s.cookie })),
    loopsPerGateway: 2,
    pauseMs: 15,
    maxRequests: 60_000,
    maxMs: 80_000,
  });

  const exits: string[] = [];
  /** When each gateway was not serving: from its SIGTERM to its ping answering again. */
  const down: Array<{ gw: number; from: number; to: number }> = [];
  const signedOut = new Map<string, number>();
  const signOut = async (s: LoggedIn, gw: number, when: string) => {
    const outcome = await clients.signOut(gw, s.cookie);
    t.equal(outcome, 302, `${s.username} signed out through gateway ${gw} ${when}`);
    if (outcome === 302) signedOut.set(s.username, performance.now());
  };
  /** SIGTERM, expect exit 0, run `whileDown`, start again. */
  const restart = async (m: Member, whileDown: () => Promise<void> = async () => {}) => {
    const from = performance.now();
    const code = await c.stop(m);
    if (code !== 0) exits.push(`${m.role}[${m.index}] exited ${code}:\n${m.output().slice(-2000)}`);
    await whileDown();
    await c.start(m);
    if (m.role === 'gateway') down.push({ gw: m.index, from, to: performance.now() });
    await sleep(300);
  };
  const ofRole = (role: Member['role']) => c.members.filter((m) => m.role === role);

  await sleep(300);
  const [session0, session1] = ofRole('session');
  await restart(session0!, () => signOut(leaving[0]!, 0, 'while session[0] is down'));
  await restart(session1!);

  const lateLogins: LoggedIn[] = [];
  for (const [i, auth] of ofRole('auth').entries()) {
    await restart(auth, async () => {
      lateLogins.push(await loginVia(c, (i + 1) % gateways.length, LATE));
      t.pass(`a login completed through gateway ${(i + 1) % gateways.length} while auth[${i}] was down`);
      if (i === 0) await signOut(leaving[1]!, 2, 'while auth[0] is down');
    });
  }

  for (const gw of ofRole('gateway')) {
    await restart(gw, async () => {
      if (gw.index === 1) await signOut(leaving[2]!, 2, 'while gateway[1] is down');
    });
  }
  await sleep(500);
  const probes = await hammer.stop();

  t.same(exits, [], 'every process exited 0 on SIGTERM');

  const isDown = (p: Probe) => down.some((d) => d.gw === p.gw && p.doneAt >= d.from && p.sentAt <= d.to);
  const stayingNames = new Set(STAYING.map((u) => u.username));
  const stayProbes = probes.filter((p) => stayingNames.has(p.key));
  t.same(
    stayProbes
      .filter((p) => p.outcome !== 200 && !(typeof p.outcome === 'string' && isDown(p)))
      .slice(0, 10)
      .map((p) => `${p.key} on gateway ${p.gw}: ${p.outcome}${isDown(p) ? ' (while it restarted)' : ''}`),
    [],
    `every request with a live session got 200 from a live gateway (${stayProbes.length} requests: ${JSON.stringify(tally(stayProbes))})`,
  );
  for (const gw of gateways) {
    const mine = stayProbes.filter((p) => p.gw === gw);
    const restartedAt = down.find((d) => d.gw === gw)?.to ?? Number.POSITIVE_INFINITY;
    t.ok(
      mine.filter((p) => p.outcome === 200 && p.sentAt > restartedAt).length > 0,
      `gateway ${gw} served live sessions after its restart (${JSON.stringify(tally(mine))})`,
    );
  }

  const revokedAfter = probes.filter((p) => signedOut.has(p.key) && p.sentAt > signedOut.get(p.key)!);
  const resurrected = revokedAfter.filter((p) => p.outcome === 200);
  t.ok(revokedAfter.length > 0, `the signed-out sessions were probed after their sign-outs (${JSON.stringify(tally(revokedAfter))})`);
  t.same(
    resurrected.slice(0, 10).map((p) => `${p.key} on gateway ${p.gw}, ${Math.round(p.sentAt - signedOut.get(p.key)!)} ms after its sign-out`),
    [],
    'no revoked session was accepted after its sign-out response',
  );

  // Everything restarted: the final state on every gateway.
  for (const s of staying) for (const gw of gateways) t.equal(await clients.get(gw, s.cookie), 200, `${s.username} is still logged in on gateway ${gw}`);
  for (const s of leaving) for (const gw of gateways) t.equal(await clients.get(gw, s.cookie), 302, `${s.username} is denied on gateway ${gw}`);
  for (const s of lateLogins) for (const gw of gateways) t.equal(await clients.get(gw, s.cookie), 200, `the login made with auth down is accepted on gateway ${gw}`);
});
