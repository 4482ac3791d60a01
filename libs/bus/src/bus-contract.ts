// Contract every Bus adapter must meet; run by each adapter's test file.
import { createEvent } from '@portcullis/events';
import type { Bus } from './types.ts';

type T = import('tap').Test;

/** Runs the bus contract against fresh buses from `make`. */
export function runBusContract(t: T, make: () => Promise<Bus>): void {
  const ev = (sub: string) => createEvent('UserSignedOut', { sub, provider: 'p', reason: 'test' });

  t.test('append returns increasing sequences; the same event id is recorded once', async (t) => {
    const bus = await make();
    t.teardown(() => bus.close());
    const base = await bus.log.lastSeq();
    const e = ev('a');
    const s1 = await bus.log.append(e);
    const s2 = await bus.log.append(ev('b'));
    t.equal(s1, base + 1);
    t.equal(s2, base + 2);
    t.equal(await bus.log.append(e), s1, 'duplicate id → same sequence');
    t.equal(await bus.log.lastSeq(), base + 2);
  });

  t.test('subscribe delivers history then live events, in order, one at a time', async (t) => {
    const bus = await make();
    t.teardown(() => bus.close());
    const base = await bus.log.lastSeq();
    await bus.log.append(ev('h1'));
    await bus.log.append(ev('h2'));
    const seen: string[] = [];
    let inFlight = 0;
    let overlapped = false;
    const done = new Promise<void>((resolve) => {
      const sub = bus.log.subscribe(base + 1, async (e) => {
        inFlight += 1;
        if (inFlight > 1) overlapped = true;
        await new Promise((r) => setTimeout(r, 2));
        seen.push((e.event.data as { sub: string }).sub);
        inFlight -= 1;
        if (seen.length === 4) void sub.close().then(resolve);
      });
    });
    await bus.log.append(ev('l1'));
    await bus.log.append(ev('l2'));
    await done;
    t.same(seen, ['h1', 'h2', 'l1', 'l2']);
    t.equal(overlapped, false);
  });

  t.test('request reaches a server and returns its JSON reply', async (t) => {
    const bus = await make();
    t.teardown(() => bus.close());
    const sub = bus.rpc.serve('test.echo', async (p) => ({ got: p }));
    t.teardown(() => sub.close());
    t.same(await bus.rpc.request('test.echo', { a: 1 }), { got: { a: 1 } });
  });

  t.test('a handler error reaches the requester with its code and status', async (t) => {
    const bus = await make();
    t.teardown(() => bus.close());
    const sub = bus.rpc.serve('test.fail', async () => {
      throw Object.assign(new Error('nope'), { code: 'PORTCULLIS_TEST_FAIL', statusCode: 418 });
    });
    t.teardown(() => sub.close());
    await t.rejects(bus.rpc.request('test.fail', {}), { code: 'PORTCULLIS_TEST_FAIL', statusCode: 418 });
  });

  t.test('a request whose handler does not answer in time fails with PORTCULLIS_BUS_TIMEOUT (504)', async (t) => {
    const bus = await make();
    t.teardown(() => bus.close());
    let release: (v: unknown) => void = () => {};
    const sub = bus.rpc.serve('test.hang', () => new Promise((r) => (release = r)));
    t.teardown(() => sub.close());
    await bus.rpc.ping();
    const startedAt = Date.now();
    await t.rejects(bus.rpc.request('test.hang', {}, 150), { code: 'PORTCULLIS_BUS_TIMEOUT', statusCode: 504 });
    t.ok(Date.now() - startedAt < 5000, 'gives up after the timeout');
    release('late');
  });

  t.test('publish and gather reach every listener, not one of a group', async (t) => {
    const one = await make();
    const two = one; // two listeners (as two gateways would be) on the same medium
    t.teardown(() => one.close());
    const seen: string[] = [];
    const subs = [
      one.rpc.listen('test.fanout', async (p) => {
        seen.push(`one:${(p as { n: number }).n}`);
        return { from: 'one' };
      }),
      two.rpc.listen('test.fanout', async (p) => {
        seen.push(`two:${(p as { n: number }).n}`);
        return { from: 'two' };
      }),
    ];
    t.teardown(() => Promise.all(subs.map((s) => s.close())));
    await one.rpc.ping();
    const replies = await one.rpc.gather<{ from: string }>('test.fanout', { n: 1 }, { expect: 2, timeoutMs: 2000 });
    t.same(replies.map((r) => r.from).sort(), ['one', 'two']);
    one.rpc.publish('test.fanout', { n: 2 });
    for (let i = 0; i < 100 && seen.filter((s) => s.endsWith(':2')).length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    t.same(seen.filter((s) => s.endsWith(':2')).sort(), ['one:2', 'two:2']);
    const none = await one.rpc.gather('test.nobody-listens', {}, { expect: 1, timeoutMs: 100 });
    t.same(none, [], 'no listener → no replies, no error');
  });

  t.test('gather with done waits for the answers it needs, whatever answers first, and stops once it has them', async (t) => {
    const bus = await make();
    t.teardown(() => bus.close());
    const subs = [
      bus.rpc.listen('test.done', async () => ({ from: 'extra' })),
      bus.rpc.listen('test.done', async () => {
        await new Promise((r) => setTimeout(r, 150));
        return { from: 'wanted' };
      }),
    ];
    t.teardown(() => Promise.all(subs.map((s) => s.close())));
    await bus.rpc.ping();
    const started = Date.now();
    const replies = await bus.rpc.gather<{ from: string }>('test.done', {}, {
      expect: 1,
      timeoutMs: 3000,
      done: (r) => r.some((x) => x.from === 'wanted'),
    });
    t.ok(replies.some((r) => r.from === 'wanted'), 'the wanted answer is there, though another came first');
    t.ok(Date.now() - started < 2000, 'stopped once done, not at the timeout');
  });

  t.test('a request nobody serves fails with a no-responder error', async (t) => {
    const bus = await make();
    t.teardown(() => bus.close());
    await t.rejects(bus.rpc.request('test.nobody', {}, 500), { code: 'PORTCULLIS_BUS_NO_RESPONDER' });
  });
}
