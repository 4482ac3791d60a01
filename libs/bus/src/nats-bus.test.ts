// Runs the bus contract and the NATS-specific behaviour against a real single nats-server.
import { createEvent, type SequencedEvent } from '@portcullis/events';
import { startNatsLossyProxy, startNatsServer } from '@portcullis/testkit';
import t from 'tap';
import { runBusContract } from './bus-contract.ts';
import { BusStartError } from './bus-start-error.ts';
import { createNatsBus, type NatsBus } from './nats-bus.ts';
import { connectNats } from './nats-connection.ts';
import { buildTestNatsConfig, connectionOf, waitUntil } from './nats-test-support.ts';

const server = await startNatsServer();
t.teardown(() => server.stop());

const openBus = (name = 'test', over = {}): Promise<NatsBus> =>
  createNatsBus({ nats: buildTestNatsConfig([server.url], over), name, streamMaxAgeSeconds: 3600 });

const signedOut = (sub: string) => createEvent('UserSignedOut', { sub, provider: 'p', reason: 'test' });

/** Subscribes from the first event, appends one and waits for it; returns the sequences seen (growing). */
async function followFromStart(t: import('tap').Test, bus: NatsBus): Promise<number[]> {
  const seen: number[] = [];
  const sub = bus.log.subscribe(1, (e) => {
    seen.push(e.seq);
  });
  t.teardown(() => sub.close());
  await bus.log.append(signedOut('one'));
  await waitUntil(() => seen.length === 1, 5000, 'the first event');
  return seen;
}

t.test('NATS bus meets the bus contract', async (t) => {
  runBusContract(t, () => openBus());
});

t.test('the stream is created with file storage, the event subjects, a 2 min de-duplication window, max_age and 1 replica on a single server', async (t) => {
  const own = await startNatsServer();
  t.teardown(() => own.stop());
  const bus = await createNatsBus({ nats: buildTestNatsConfig([own.url], { stream: 'SHAPE_TEST' }), name: 't', streamMaxAgeSeconds: 7200 });
  t.teardown(() => bus.close());
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const info = await (await jetstreamManager(connectionOf(bus))).streams.info('SHAPE_TEST');
  t.equal(info.config.storage, 'file');
  t.same(info.config.subjects, ['portcullis.events.>']);
  t.equal(info.config.duplicate_window, 120e9);
  t.equal(info.config.max_age, 7200e9);
  t.equal(info.config.num_replicas, 1);
});

t.test('max_age shorter than 2 min shortens the de-duplication window to match (the server refuses a longer one)', async (t) => {
  const own = await startNatsServer();
  t.teardown(() => own.stop());
  const bus = await createNatsBus({ nats: buildTestNatsConfig([own.url]), name: 't', streamMaxAgeSeconds: 30 });
  t.teardown(() => bus.close());
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const info = await (await jetstreamManager(connectionOf(bus))).streams.info('PORTCULLIS_SESSIONS');
  t.equal(info.config.duplicate_window, 30e9);
});

t.test('a second start updates max_age of the existing stream and keeps its events', async (t) => {
  const own = await startNatsServer();
  t.teardown(() => own.stop());
  const first = await createNatsBus({ nats: buildTestNatsConfig([own.url], { stream: 'UPDATE_TEST' }), name: 't', streamMaxAgeSeconds: 600 });
  await first.log.append(signedOut('kept'));
  await first.close();
  const second = await createNatsBus({ nats: buildTestNatsConfig([own.url], { stream: 'UPDATE_TEST' }), name: 't', streamMaxAgeSeconds: 1200 });
  t.teardown(() => second.close());
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const info = await (await jetstreamManager(connectionOf(second))).streams.info('UPDATE_TEST');
  t.equal(info.config.max_age, 1200e9);
  t.equal(await second.log.lastSeq(), 1);
});

t.test('an event appended twice with the same id is stored once, under its first sequence', async (t) => {
  const bus = await openBus();
  t.teardown(() => bus.close());
  const e = signedOut('dup');
  const first = await bus.log.append(e);
  const again = await bus.log.append(e);
  t.equal(again, first);
  t.equal(await bus.log.lastSeq(), first);
});

t.test('JetStream storage full: an append fails with PORTCULLIS_BUS_LOG_FULL (503) naming max_file_store, and nothing is recorded', async (t) => {
  const own = await startNatsServer({ configText: 'jetstream { max_file_store: 64KB }' });
  t.teardown(() => own.stop());
  const bus = await createNatsBus({ nats: buildTestNatsConfig([own.url]), name: 't', streamMaxAgeSeconds: 3600 });
  t.teardown(() => bus.close());
  let refused: unknown;
  let recorded = 0;
  // Fill it: ~64 KB of events, each about 300 bytes stored.
  for (let i = 0; i < 1000 && refused === undefined; i++) {
    try {
      await bus.log.append(createEvent('UserSignedOut', { sub: `user-${i}`.padEnd(200, '.'), provider: 'p', reason: 'test' }));
      recorded += 1;
    } catch (err) {
      refused = err;
    }
  }
  t.ok(refused, `an append was refused (after ${recorded} recorded)`);
  const err = refused as { code?: string; statusCode?: number; message?: string };
  t.equal(err.code, 'PORTCULLIS_BUS_LOG_FULL');
  t.equal(err.statusCode, 503);
  t.match(err.message, /no room left for stream PORTCULLIS_SESSIONS/);
  t.match(err.message, /max_file_store/, 'names the nats-server setting to raise');
  t.equal(await bus.log.lastSeq(), recorded, 'the refused event is not in the log');
});

t.test('a stream limit set by the operator with discard "new": an append fails with PORTCULLIS_BUS_LOG_FULL naming max_msgs', async (t) => {
  const own = await startNatsServer();
  t.teardown(() => own.stop());
  const bus = await createNatsBus({ nats: buildTestNatsConfig([own.url]), name: 't', streamMaxAgeSeconds: 3600 });
  t.teardown(() => bus.close());
  const { DiscardPolicy, jetstreamManager } = await import('@nats-io/jetstream');
  const jsm = await jetstreamManager(connectionOf(bus));
  const { config } = await jsm.streams.info('PORTCULLIS_SESSIONS');
  await jsm.streams.update('PORTCULLIS_SESSIONS', { ...config, max_msgs: 2, discard: DiscardPolicy.New });
  await bus.log.append(signedOut('a'));
  await bus.log.append(signedOut('b'));
  const err = await bus.log.append(signedOut('c')).then(
    () => null,
    (e: unknown) => e as { code?: string; statusCode?: number; message?: string },
  );
  t.equal(err?.code, 'PORTCULLIS_BUS_LOG_FULL');
  t.equal(err?.statusCode, 503);
  t.match(err?.message, /max_msgs/);
  t.equal(await bus.log.lastSeq(), 2);
});

t.test('a stream size limit with discard "old" is reported at start, and a reader skipping the events it dropped reports the gap', async (t) => {
  const own = await startNatsServer();
  t.teardown(() => own.stop());
  const first = await createNatsBus({ nats: buildTestNatsConfig([own.url]), name: 't', streamMaxAgeSeconds: 3600 });
  t.teardown(() => first.close());
  const { DiscardPolicy, jetstreamManager } = await import('@nats-io/jetstream');
  const jsm = await jetstreamManager(connectionOf(first));
  const { config } = await jsm.streams.info('PORTCULLIS_SESSIONS');
  await jsm.streams.update('PORTCULLIS_SESSIONS', { ...config, max_msgs: 2, discard: DiscardPolicy.Old });
  for (const sub of ['a', 'b', 'c', 'd']) await first.log.append(signedOut(sub));

  const statuses: Array<{ type: string; data?: unknown }> = [];
  const bus = await createNatsBus({ nats: buildTestNatsConfig([own.url]), name: 't2', streamMaxAgeSeconds: 3600, onStatus: (s) => statuses.push(s) });
  t.teardown(() => bus.close());
  const limits = statuses.find((s) => s.type === 'log_stream_limits');
  t.match((limits?.data as { message?: string })?.message, /max_msgs 2 with discard "old".*--max-msgs=-1/, 'the risk and the fix are named at start');

  const seen: number[] = [];
  const sub = bus.log.subscribe(1, (e) => {
    seen.push(e.seq);
  });
  t.teardown(() => sub.close());
  await waitUntil(() => seen.length >= 2, 5000, 'the events the stream still holds');
  t.same(seen, [3, 4]);
  t.same(
    statuses.filter((s) => s.type === 'log_gap').map((s) => s.data),
    [{ stream: 'PORTCULLIS_SESSIONS', missing: { from: 1, to: 2 } }],
    'the dropped events are reported, not skipped silently',
  );
});

t.test('the stream as Portcullis creates it (max_age only) raises no limits warning', async (t) => {
  const own = await startNatsServer();
  t.teardown(() => own.stop());
  const statuses: string[] = [];
  const bus = await createNatsBus({ nats: buildTestNatsConfig([own.url]), name: 't', streamMaxAgeSeconds: 3600, onStatus: (s) => statuses.push(s.type) });
  t.teardown(() => bus.close());
  t.notOk(statuses.includes('log_stream_limits'));
});

t.test('subscribe from a later sequence skips the earlier events', async (t) => {
  const bus = await openBus();
  t.teardown(() => bus.close());
  await bus.log.append(signedOut('before'));
  const from = await bus.log.append(signedOut('from'));
  const seen: SequencedEvent[] = [];
  const sub = bus.log.subscribe(from, (e) => {
    seen.push(e);
  });
  t.teardown(() => sub.close());
  await waitUntil(() => seen.length >= 1, 5000, 'the first delivery');
  t.equal(seen[0]?.seq, from);
  t.match(seen[0]?.event.data, { sub: 'from' });
});

t.test('a handler that throws stops the subscription and reports the error', async (t) => {
  const bus = await openBus();
  t.teardown(() => bus.close());
  const from = await bus.log.append(signedOut('boom'));
  await bus.log.append(signedOut('never'));
  let calls = 0;
  const failed = new Promise<unknown>((resolve) => {
    bus.log.subscribe(
      from,
      () => {
        calls += 1;
        throw new Error('handler broke');
      },
      resolve,
    );
  });
  t.match(await failed, { message: 'handler broke' });
  await new Promise((r) => setTimeout(r, 200));
  t.equal(calls, 1, 'nothing is delivered after the failure');
});

t.test('two servers in the queue group both get work', async (t) => {
  const a = await openBus('a');
  const b = await openBus('b');
  const client = await openBus('client');
  t.teardown(() => Promise.all([a.close(), b.close(), client.close()]));
  const counts = { a: 0, b: 0 };
  a.rpc.serve('test.shared', async () => {
    counts.a += 1;
    return 'a';
  });
  b.rpc.serve('test.shared', async () => {
    counts.b += 1;
    return 'b';
  });
  await Promise.all([connectionOf(a).flush(), connectionOf(b).flush()]);
  for (let i = 0; i < 40; i++) await client.rpc.request('test.shared', { i });
  t.equal(counts.a + counts.b, 40, 'each request is answered once');
  t.ok(counts.a > 0 && counts.b > 0, `both served (a=${counts.a}, b=${counts.b})`);
});

t.test('a request that outlives its timeout fails with PORTCULLIS_BUS_TIMEOUT', async (t) => {
  const bus = await openBus();
  t.teardown(() => bus.close());
  bus.rpc.serve('test.slow', () => new Promise((r) => setTimeout(() => r('late'), 500)));
  await connectionOf(bus).flush();
  await t.rejects(bus.rpc.request('test.slow', {}, 100), { code: 'PORTCULLIS_BUS_TIMEOUT' });
});

t.test('close() lets a request in flight finish and answer before the connection drains', async (t) => {
  const server1 = await openBus('server');
  const client = await openBus('client');
  t.teardown(() => client.close());
  let started!: () => void;
  const handlerStarted = new Promise<void>((r) => {
    started = r;
  });
  server1.rpc.serve('test.inflight', async () => {
    started();
    await new Promise((r) => setTimeout(r, 300));
    return 'finished';
  });
  await connectionOf(server1).flush();
  const reply = client.rpc.request('test.inflight', {}, 5000);
  await handlerStarted;
  const closed = server1.close();
  t.equal(await reply, 'finished');
  await closed;
  t.equal(connectionOf(server1).isClosed(), true);
  await t.rejects(client.rpc.request('test.inflight', {}, 1000), { code: 'PORTCULLIS_BUS_NO_RESPONDER' }, 'a closed server takes no more requests');
});

t.test('a server that nobody listens on fails the start within the timeout, naming the server', async (t) => {
  const startedAt = Date.now();
  const err = await createNatsBus({
    nats: buildTestNatsConfig(['nats://127.0.0.1:1']),
    name: 't',
    streamMaxAgeSeconds: 60,
    startTimeoutMs: 2000,
  }).catch((e: unknown) => e);
  t.type(err, BusStartError);
  t.match(err, { code: 'PORTCULLIS_BUS_CONNECT_FAILED', message: /nats:\/\/127\.0\.0\.1:1/ });
  t.ok(Date.now() - startedAt < 5000, 'does not hang');
});

t.test('a server without JetStream fails the start with a stream setup error', async (t) => {
  const plain = await startNatsServer({ jetstream: false });
  t.teardown(() => plain.stop());
  const err = await createNatsBus({ nats: buildTestNatsConfig([plain.url]), name: 't', streamMaxAgeSeconds: 60 }).catch((e: unknown) => e);
  t.match(err, { code: 'PORTCULLIS_BUS_STREAM_SETUP_FAILED', message: /-js/ });
});

t.test('connected() turns false when the server goes away and true when it is back; the subscriber resumes', async (t) => {
  const own = await startNatsServer();
  let current = own;
  t.teardown(() => current.stop());
  const bus = await createNatsBus({ nats: buildTestNatsConfig([own.url]), name: 't', streamMaxAgeSeconds: 3600 });
  t.teardown(() => bus.close());
  const seen = await followFromStart(t, bus);
  t.equal(bus.connected(), true);
  own.kill();
  await own.exited;
  await waitUntil(() => !bus.connected(), 5000, 'the disconnect');
  current = await startNatsServer({ port: own.port, dir: own.dir, serverName: own.serverName });
  await waitUntil(() => bus.connected(), 10_000, 'the reconnect');
  await bus.log.append(signedOut('two'));
  await waitUntil(() => seen.length === 2, 10_000, 'the event appended after the restart');
  t.same(seen, [1, 2]);
});

t.test('a subscriber whose consumer heartbeats but lost a delivery starts a new consumer and gets the event, once', async (t) => {
  const own = await startNatsServer();
  t.teardown(() => own.stop());
  // Between the client and the server: loses one delivery, as a consumer whose server stopped delivering would.
  const proxy = await startNatsLossyProxy(own.port);
  t.teardown(() => proxy.close());
  const statuses: string[] = [];
  const bus = await createNatsBus({ nats: buildTestNatsConfig([proxy.url]), name: 't', streamMaxAgeSeconds: 3600, onStatus: (s) => statuses.push(s.type) });
  t.teardown(() => bus.close());
  const seen = await followFromStart(t, bus);
  // The last event's delivery is lost: no later event reveals the gap, and heartbeats keep coming.
  const lost = proxy.dropNext((m) => m.reply.startsWith('$JS.ACK.PORTCULLIS_SESSIONS.'));
  await bus.log.append(signedOut('two'));
  t.equal((await lost).reply.split('.')[5], '2', 'the delivery of event 2 was lost on the way');
  await waitUntil(() => seen.length === 2, 15_000, 'event 2 from a new consumer');
  t.ok(statuses.includes('log_subscription_behind'), 'the subscriber reported finding itself behind the stream');
  t.notOk(statuses.includes('log_subscription_stalled'), 'not as a heartbeat stall: the consumer kept beating');
  await bus.log.append(signedOut('three'));
  await waitUntil(() => seen.length === 3, 5000, 'the next event');
  t.same(seen, [1, 2, 3], 'every event once, in order');
});

t.test('a NATS password holding an unencoded "@" stays out of the start error', async (t) => {
  // The URL parser takes the last "@" of the authority, so this is user "u", password "p@ss".
  const err = await connectNats({ servers: ['nats://u:p@ss@127.0.0.1:1'] }, 1000).then(
    () => null,
    (e: unknown) => e as Error,
  );
  t.ok(err instanceof BusStartError);
  t.match(err?.message, /cannot connect to NATS at nats:\/\/\*\*\*@127\.0\.0\.1:1 /);
  t.notMatch(err?.message, /p@ss|ss@/, 'no part of the password');
});
