// A gateway cut off from NATS (its node killed: connection closed; or its node SIGSTOPped: silent, no FIN) never
// accepts a session signed out through another gateway, keeps serving live sessions from Redis, and recovers.
import type { NatsServer } from '@portcullis/testkit';
import t from 'tap';
import { type Cluster, type LogLine, startCluster } from './cluster-harness.ts';
import { GatewayClients, type LoggedIn, type Probe, loginVia, sleep, startHammer, tally } from './cluster-traffic.ts';
import { consumersHostedBy, countConsumers, findStreamLeader, placeStreamLeaderAwayFrom, restartNatsServer } from './nats-admin.ts';
import { countScriptCalls } from './redis-stats.ts';

const ALICE = { username: 'alice', password: 'alice-password' };
const BOB = { username: 'bob', password: 'bob-password' };
const CAROL = { username: 'carol', password: 'carol-password' };
/** The partitioned gateway; the sign-outs go through another one. */
const CUT = 0;
const OTHER = 1;
/** The stream's max_age as the CLI sets it (one day of sessions + one day of margin), so the CLI finds it unchanged. */
const STREAM_MAX_AGE_S = 2 * 86_400;
/** Requests used to tell cache hits from Redis reads. */
const READS = 20;

/** Session reads that reached Redis while `gw` answered READS requests for `cookie` (nothing else may run meanwhile). */
async function redisReadsFor(c: Cluster, clients: GatewayClients, gw: number, cookie: string): Promise<{ reads: number; outcomes: string }> {
  const before = await countScriptCalls(c.redis.port);
  const outcomes: Probe[] = [];
  for (let i = 0; i < READS; i++) outcomes.push({ gw, key: '', sentAt: 0, doneAt: 0, outcome: await clients.get(gw, cookie) });
  return { reads: (await countScriptCalls(c.redis.port)) - before, outcomes: JSON.stringify(tally(outcomes)) };
}

/** The member's log messages since `since` (performance.now()). */
function messagesSince(lines: LogLine[], since: number): string[] {
  return lines.filter((l) => l.at >= since).map((l) => l.msg);
}

/** Names of gateway connections on `server` (from its /connz monitoring endpoint). */
async function gatewayConnectionsOn(server: NatsServer): Promise<string[]> {
  const res = await fetch(`${server.monitorUrl}/connz`);
  const body = (await res.json()) as { connections?: Array<{ name?: string }> };
  return (body.connections ?? []).map((x) => x.name ?? '').filter((n) => n.startsWith('portcullis-gateway@'));
}

/** Polls `check` every 100 ms; throws `what` after `timeoutMs`. */
async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

t.test('cluster: a gateway partitioned from NATS never accepts a revoked session', async (t) => {
  let cutNode!: NatsServer;
  const c = await startCluster({
    // The cut gateway talks to node n1 only; everyone else to n2 and n3, so the faults on n1 reach only it.
    env: (m, nats) => ({
      PORTCULLIS_CLUSTER__NATS__SERVERS: (m.role === 'gateway' && m.index === CUT ? nats.urls.slice(0, 1) : nats.urls.slice(1)).join(','),
    }),
    // The stream leader lives away from n1.
    beforeMembers: async (nats) => {
      cutNode = nats.servers[0]!;
      await placeStreamLeaderAwayFrom(nats, cutNode, STREAM_MAX_AGE_S);
    },
  });
  t.teardown(() => c.close());
  const clients = new GatewayClients(c);
  t.teardown(() => clients.close());
  const all = c.gateways().map((_, i) => i);
  const cut = c.gateways()[CUT]!;
  const sessionProcesses = c.members.filter((m) => m.role === 'session');

  t.not(await findStreamLeader(c.nats), cutNode.serverName, 'precondition: the stream leader is not on the node that will fail');
  t.equal((await gatewayConnectionsOn(cutNode)).length, 1, 'precondition: exactly one gateway (the cut one) is connected to that node');
  // Ordered consumers are R1 on a random peer: the other members' may sit on n1, and a fault there would hit
  // them too (see the last subtest). Move them: with n1 down they re-create their consumers on n2/n3 (~5 s).
  // (n1 brings the dead ones back as orphans when it restarts; nobody reads them.)
  const consumers = await countConsumers(c.nats);
  const onCutNode = await consumersHostedBy(c.nats, cutNode);
  cutNode.kill();
  // The cut gateway is pinned to n1, so it cannot re-create its own consumer while n1 is down (when that
  // consumer happened to live on n1): every other member's must be back.
  await until(async () => (await countConsumers(c.nats)) >= consumers - 1, 30_000, 'every other member to re-create its consumer on n2/n3');
  t.comment(`${onCutNode} of ${consumers} consumers were on n1; all ${await countConsumers(c.nats)} in use are now on n2/n3`);
  cutNode = await restartNatsServer(c.nats, cutNode);
  // The cut gateway failed over to n2/n3 meanwhile: bring it back to its one node.
  t.equal(await c.stop(cut), 0, 'the cut gateway stops cleanly (SIGTERM, exit 0)');
  await c.start(cut);
  t.equal((await gatewayConnectionsOn(cutNode)).length, 1, 'precondition: the cut gateway is back on n1, where no other member has a consumer');

  // A session that stays logged in throughout: a partition must not log anyone out.
  const live: LoggedIn = await loginVia(c, 2, CAROL);

  /**
   * Hammers every gateway with `revoked` and `live`, signs `revoked` out through OTHER, and checks every
   * answer: `revoked` never accepted after the sign-out response, `live` always accepted. `knownBug` marks
   * the revocation check as a TODO (reported, not failing the run) while a known bug makes it fail.
   */
  const signOutDuringPartition = async (
    t: import('tap').Test,
    revoked: LoggedIn,
    live: LoggedIn,
    cutAt: number,
    knownBug?: string,
  ): Promise<void> => {
    const hammer = startHammer(clients, {
      gateways: all,
      targets: [
        { key: 'revoked', cookie: revoked.cookie },
        { key: 'live', cookie: live.cookie },
      ],
      loopsPerGateway: 2,
      maxRequests: 20_000,
      maxMs: 20_000,
    });
    const sentAt = performance.now();
    const answer = await clients.signOut(OTHER, revoked.cookie);
    const answeredAt = performance.now();
    t.ok(
      answer === 302 || answer === 503,
      `the sign-out through gateway ${OTHER} answered ${answer} (${Math.round(answeredAt - sentAt)} ms, ${Math.round(sentAt - cutAt)} ms into the partition)`,
    );
    await sleep(2000);
    const probes = await hammer.stop();
    const afterOnCut = probes.filter((p) => p.gw === CUT && p.key === 'revoked' && p.sentAt > answeredAt);
    t.ok(
      afterOnCut.filter((p) => typeof p.outcome === 'number').length >= 10,
      `the cut gateway kept answering after the sign-out (${JSON.stringify(tally(afterOnCut))})`,
    );
    if (answer === 302) {
      const accepted = probes.filter((p) => p.key === 'revoked' && p.sentAt > answeredAt && p.outcome === 200);
      t.same(
        accepted.slice(0, 5).map((p) => `gateway ${p.gw}, ${Math.round(p.sentAt - answeredAt)} ms after the response`),
        [],
        `no gateway accepted the revoked session after the sign-out response (${accepted.length} requests were)`,
        knownBug ? { todo: knownBug } : {},
      );
    }
    const liveProbes = probes.filter((p) => p.key === 'live' && p.sentAt > cutAt);
    const loggedOut = liveProbes.filter((p) => p.outcome !== 200);
    t.same(
      loggedOut.slice(0, 5).map((p) => `gateway ${p.gw}: ${p.outcome}`),
      [],
      `the session that was not signed out stayed accepted on every gateway, the cut one included (${JSON.stringify(tally(liveProbes.filter((p) => p.gw === CUT)))} on it)`,
    );
  };

  t.test('node killed (connection closed): the cut gateway denies from the response on, then trusts its cache again', async (t) => {
    const revoked = await loginVia(c, OTHER, ALICE);
    for (const gw of all) t.equal(await clients.get(gw, revoked.cookie), 200, `gateway ${gw} accepts alice before`);
    t.equal(await clients.get(CUT, live.cookie), 200, 'the cut gateway holds the live session');

    const cutAt = performance.now();
    cutNode.kill();
    await signOutDuringPartition(t, revoked, live, cutAt);

    const since = messagesSince(cut.logLines(), cutAt);
    t.ok(since.includes('NATS disconnected'), 'the cut gateway noticed the closed connection');
    t.ok(
      since.some((m) => m.startsWith('session cache distrusted')),
      'and stopped trusting its cache',
    );
    // It fails over to n2/n3 (learned from the cluster's gossip) and catches up with the log.
    await until(async () => messagesSince(cut.logLines(), cutAt).includes('session cache trusted'), 15_000, 'the cut gateway to trust its cache').catch(
      () => {},
    );
    const sinceCut = messagesSince(cut.logLines(), cutAt);
    t.ok(
      sinceCut.includes('session cache trusted'),
      `the cut gateway logged 'session cache trusted' again (its log since the cut: ${JSON.stringify(sinceCut)})`,
    );
    cutNode = await restartNatsServer(c.nats, cutNode);

    t.equal(await clients.get(CUT, revoked.cookie), 302, 'the recovered gateway still denies the revoked session');
    // n1 rejoining the NATS cluster may reset the gateway's ordered consumer once more (a fresh distrust,
    // then trust after catching up): measure until the cache serves, bounded at 5 s.
    let recovered = await redisReadsFor(c, clients, CUT, live.cookie);
    for (let n = 0; n < 20 && recovered.reads > 2; n++) {
      await sleep(250);
      recovered = await redisReadsFor(c, clients, CUT, live.cookie);
    }
    t.ok(
      recovered.reads <= 2,
      `the recovered gateway answers the live session from its cache again (${recovered.reads} Redis reads for ${READS} requests: ${recovered.outcomes}; log since the cut: ${JSON.stringify(messagesSince(cut.logLines(), cutAt).filter((m) => m.startsWith('session cache') || m.startsWith('NATS') || m.startsWith('event log reader')))})`,
    );
  });

  t.test('node SIGSTOPped (silent, no FIN): the cut gateway reads Redis, denies from the response on, and recovers on SIGCONT', async (t) => {
    // Back to the pinned node: the gateway moved to n2/n3 when n1 died.
    t.equal(await c.stop(cut), 0, 'the cut gateway stops cleanly');
    await c.start(cut);
    t.equal((await gatewayConnectionsOn(cutNode)).length, 1, 'the restarted cut gateway is connected to n1 again');
    const revoked = await loginVia(c, OTHER, BOB);
    for (const gw of all) t.equal(await clients.get(gw, revoked.cookie), 200, `gateway ${gw} accepts bob before`);
    t.equal(await clients.get(CUT, live.cookie), 200, 'the cut gateway holds the live session');
    // A gateway just restarted trusts its cache once it has read the log to the end it found at start (and
    // a lease lapse on a busy machine reads through for a moment): retried as for the recovered gateway above.
    let cached = await redisReadsFor(c, clients, CUT, live.cookie);
    for (let n = 0; n < 20 && cached.reads > 2; n++) {
      await sleep(250);
      cached = await redisReadsFor(c, clients, CUT, live.cookie);
    }
    t.ok(cached.reads <= 2, `before the partition it answers from its cache (${cached.reads} Redis reads)`);

    const pid = cutNode.pid;
    let paused = true;
    t.teardown(() => {
      if (paused) process.kill(pid, 'SIGCONT');
    });
    const cutAt = performance.now();
    process.kill(pid, 'SIGSTOP');
    // The lease is half the propagation bound (125 ms here): let it lapse, unnoticed by the NATS client.
    await sleep(300);
    await signOutDuringPartition(t, revoked, live, cutAt);
    const through = await redisReadsFor(c, clients, CUT, live.cookie);
    t.ok(through.reads >= READS, `while cut off it reads Redis for every request (${through.reads} reads for ${READS} requests: ${through.outcomes})`);

    process.kill(pid, 'SIGCONT');
    paused = false;
    const resumedAt = performance.now();
    let recovered = { reads: Number.POSITIVE_INFINITY, outcomes: '' };
    for (let n = 0; n < 20 && recovered.reads > 2; n++) {
      await sleep(250);
      recovered = await redisReadsFor(c, clients, CUT, live.cookie);
    }
    t.ok(recovered.reads <= 2, `after SIGCONT the gateway trusts its cache again (${recovered.reads} Redis reads for ${READS} requests)`);
    // A silent cut only lapses the lease (not logged); a barrier it missed is logged as distrust, and must end.
    const lines = messagesSince(cut.logLines(), cutAt);
    const lastDistrust = lines.findLastIndex((m) => m.startsWith('session cache distrusted'));
    t.ok(lastDistrust < 0 || lines.slice(lastDistrust).includes('session cache trusted'), `any distrust logged was followed by trust (${JSON.stringify(lines)})`);
    t.equal(await clients.get(CUT, revoked.cookie), 302, 'the recovered gateway still denies the revoked session');

    // It is a full member again: a sign-out through it holds everywhere.
    const again = await loginVia(c, 2, CAROL);
    t.equal(await clients.signOut(CUT, again.cookie), 302, `a sign-out through the recovered gateway succeeds (${Math.round(performance.now() - resumedAt)} ms after SIGCONT)`);
    for (const gw of all) t.equal(await clients.get(gw, again.cookie), 302, `gateway ${gw} denies the session signed out through the recovered one`);
  });

  t.test(
    'the projection lags (session processes paused) while a gateway is silently cut off: a sign-out that answers success is denied by the cut gateway',
    async (t) => {
      const revoked = await loginVia(c, OTHER, ALICE);
      const fresh = await loginVia(c, 2, CAROL);
      for (const gw of all) t.equal(await clients.get(gw, revoked.cookie), 200, `gateway ${gw} accepts alice before`);
      const pids = [cutNode.pid, ...sessionProcesses.map((m) => m.child.pid!)];
      let paused = true;
      const resume = () => {
        if (!paused) return;
        paused = false;
        for (const pid of pids) process.kill(pid, 'SIGCONT');
      };
      t.teardown(resume);
      const cutAt = performance.now();
      for (const pid of pids) process.kill(pid, 'SIGSTOP');
      await sleep(300);
      // carol's earlier sessions ended with the sign-out above: `fresh` is the one that must stay accepted.
      await signOutDuringPartition(
        t,
        revoked,
        fresh,
        cutAt,
      );
      resume();
      const resumedAt = performance.now();
      // Both recoveries take NATS time after a 10 s SIGSTOP: the session processes' log readers notice
      // the missed heartbeats and resubscribe, and the cut gateway's node catches up with the stream.
      await until(async () => (await clients.get(CUT, revoked.cookie)) === 302, 30_000, 'the cut gateway to deny once everything resumed').catch(() => {});
      const status = await clients.get(CUT, revoked.cookie);
      const metric = async (port: number, name: string) =>
        new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())?.[1] ?? '?';
      const state =
        status === 302
          ? ''
          : ` (${Math.round(performance.now() - resumedAt)} ms after resuming; cut gateway cache trusted=${await metric(cut.metrics, 'portcullis_session_cache_trusted')}, ` +
            `projection lag per session process=${(await Promise.all(sessionProcesses.map((m) => metric(m.metrics, 'portcullis_projection_lag_events')))).join('/')}, ` +
            `cut gateway log since the cut: ${JSON.stringify(messagesSince(cut.logLines(), cutAt))}, ` +
            `session processes' logs since the cut: ${JSON.stringify(sessionProcesses.map((m) => messagesSince(m.logLines(), cutAt)))})`;
      t.equal(status, 302, `once everything resumed the cut gateway denies${state}`);
    },
  );
});
