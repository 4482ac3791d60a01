// Contract every SessionStore adapter must meet; run by each adapter's test file.
import { createEvent, type SessionRefreshedData, type SessionStartedData, type SequencedEvent } from '@portcullis/events';
import type { SessionStore } from './types.ts';

type T = import('tap').Test;

/** Builds a SessionStarted payload for tests. */
export function sampleSession(over: Partial<SessionStartedData> = {}): SessionStartedData {
  const now = Date.now();
  return {
    sessionId: `s-${Math.random().toString(36).slice(2)}`,
    provider: 'app',
    issuer: 'http://idp.test',
    sub: 'alice',
    sid: 'idp-sid-1',
    claims: { sub: 'alice', preferred_username: 'alice' },
    accessToken: 'at',
    idToken: 'idt',
    jwksUri: 'http://idp.test/jwks',
    createdAt: now,
    expiresAt: now + 3_600_000,
    ...over,
  };
}

/** Builds a SessionRefreshed payload for tests (new claims and tokens, no further refresh). */
export function sampleRefresh(sessionId: string, over: Partial<SessionRefreshedData> = {}): SessionRefreshedData {
  return {
    sessionId,
    claims: { sub: 'alice', preferred_username: 'alice', groups: ['refreshed'] },
    accessToken: 'at-refreshed',
    idToken: 'idt-refreshed',
    refreshToken: 'rt-refreshed',
    refreshAt: null,
    refreshedAt: Date.now(),
    ...over,
  };
}

/** Runs the store contract against fresh stores from `make`. */
export function runStoreContract(t: T, make: () => Promise<SessionStore>): void {
  const started = (seq: number, data: SessionStartedData): SequencedEvent => ({ seq, event: createEvent('SessionStarted', data) });
  const refreshed = (seq: number, data: SessionRefreshedData): SequencedEvent => ({ seq, event: createEvent('SessionRefreshed', data) });
  const signedOut = (seq: number, sub: string): SequencedEvent => ({ seq, event: createEvent('UserSignedOut', { sub, provider: 'app', reason: 'sign_out' }) });
  const ended = (seq: number, sessionId: string): SequencedEvent => ({ seq, event: createEvent('SessionEnded', { sessionId, reason: 'test' }) });

  t.test('a started session is live and carries its sequence', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const s = sampleSession();
    await store.apply(started(1, s));
    const got = await store.getLiveSession(s.sessionId);
    t.equal(got?.sub, 'alice');
    t.equal(got?.seq, 1);
    t.same(got?.claims, s.claims);
    t.equal(await store.appliedSeq(), 1);
  });

  t.test('an unknown session id is null, not an error', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    t.equal(await store.getLiveSession('nope'), null);
  });

  t.test('an expired session is not live', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const s = sampleSession({ expiresAt: Date.now() + 50 });
    await store.apply(started(1, s));
    t.equal(await store.getLiveSession(s.sessionId, Date.now() + 1000), null);
  });

  t.test('UserSignedOut ends every session of the user and none of another user', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const a1 = sampleSession();
    const a2 = sampleSession({ provider: 'other' });
    const b = sampleSession({ sub: 'bob', sid: 'bob-sid' });
    await store.apply(started(1, a1));
    await store.apply(started(2, a2));
    await store.apply(started(3, b));
    await store.apply({ seq: 4, event: createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'sign_out' }) });
    t.equal(await store.getLiveSession(a1.sessionId), null);
    t.equal(await store.getLiveSession(a2.sessionId), null);
    t.equal((await store.getLiveSession(b.sessionId))?.sub, 'bob');
    t.same(
      (await store.listLiveSessions()).map((s) => s.sessionId),
      [b.sessionId],
    );
  });

  t.test('a login after the sign-out is live again', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    await store.apply(started(1, sampleSession()));
    await store.apply({ seq: 2, event: createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'sign_out' }) });
    const again = sampleSession();
    await store.apply(started(3, again));
    t.equal((await store.getLiveSession(again.sessionId))?.seq, 3);
  });

  t.test('replaying an event twice changes nothing (idempotent by sequence)', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const s = sampleSession();
    const e1 = started(1, s);
    const out = { seq: 2, event: createEvent('UserSignedOut', { sub: 'alice', provider: 'app', reason: 'sign_out' }) };
    await store.apply(e1);
    await store.apply(out);
    await store.apply(e1);
    t.equal(await store.getLiveSession(s.sessionId), null, 'the replayed start does not resurrect the session');
    t.equal(await store.appliedSeq(), 2);
  });

  t.test('a new session under the id of an ended one starts; a replay of the ended one does not', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const first = sampleSession({ sessionId: 'header-credential-hash', sub: 'svc' });
    await store.apply(started(1, first));
    await store.apply({ seq: 2, event: createEvent('SessionEnded', { sessionId: first.sessionId, reason: 'test' }) });
    await store.apply(started(3, first));
    t.equal(await store.getLiveSession(first.sessionId), null, 'a replayed copy of the ended session stays dead');
    const again = sampleSession({ sessionId: 'header-credential-hash', sub: 'svc', createdAt: first.createdAt + 1 });
    await store.apply(started(4, again));
    t.equal((await store.getLiveSession(again.sessionId))?.seq, 4, 'the credential checked again is a live session');
  });

  t.test('a second SessionEnded for an ended session keeps its tombstone: a new session under the id starts, a replay of the ended one does not', async (t) => {
    // Two enders racing (the idle sweeper and the refresher, or an admin revoke): the second meets no record.
    const store = await make();
    t.teardown(() => store.close());
    const first = sampleSession({ sessionId: 'header-credential-hash-2', sub: 'svc' });
    await store.apply(started(1, first));
    await store.apply({ seq: 2, event: createEvent('SessionEnded', { sessionId: first.sessionId, reason: 'idle' }) });
    await store.apply({ seq: 3, event: createEvent('SessionEnded', { sessionId: first.sessionId, reason: 'refresh failed' }) });
    await store.apply(started(4, first));
    t.equal(await store.getLiveSession(first.sessionId), null, 'a replayed copy of the ended session stays dead');
    const again = sampleSession({ sessionId: 'header-credential-hash-2', sub: 'svc', createdAt: first.createdAt + 1 });
    await store.apply(started(5, again));
    t.equal((await store.getLiveSession(again.sessionId))?.seq, 5, 'the credential checked again is a live session (not locked out for 24 h)');
  });

  t.test('a SessionEnded for a session the store does not hold ends nothing later: the next session under that id (a header credential checked again) is live', async (t) => {
    // What a rebuild replaying old history meets: a start already expired (not held), then its end,
    // then a later session under the same id. The projection must come out as it did when applied live
    // (the end met the record then); and a gateway's cache ends only sessions started before the end.
    const store = await make();
    t.teardown(() => store.close());
    const now = Date.now();
    const old = sampleSession({ sessionId: 'header-credential-hash-3', sub: 'svc', createdAt: now - 7_200_000, expiresAt: now - 3_600_000 });
    await store.apply(started(1, old));
    await store.apply(ended(2, old.sessionId));
    const again = sampleSession({ sessionId: old.sessionId, sub: 'svc', createdAt: now });
    await store.apply(started(3, again));
    t.equal((await store.getLiveSession(again.sessionId))?.seq, 3, 'the credential checked again is a live session (not locked out for 24 h)');
    // An id the store never held at all: the end is applied and ends nothing that starts after it.
    await store.apply(ended(4, 'never-held'));
    const first = sampleSession({ sessionId: 'never-held', sub: 'svc' });
    await store.apply(started(5, first));
    t.equal((await store.getLiveSession('never-held'))?.seq, 5, 'a session started after the end is live');
    t.equal(await store.appliedSeq(), 5);
  });

  t.test('SessionEnded ends one session only', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const a = sampleSession();
    const b = sampleSession();
    await store.apply(started(1, a));
    await store.apply(started(2, b));
    await store.apply({ seq: 3, event: createEvent('SessionEnded', { sessionId: a.sessionId, reason: 'admin' }) });
    t.equal(await store.getLiveSession(a.sessionId), null);
    t.ok(await store.getLiveSession(b.sessionId));
  });

  t.test('IdpSessionEnded by sid ends the sessions of that IdP session only', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const a = sampleSession({ sid: 'one' });
    const b = sampleSession({ sid: 'two' });
    await store.apply(started(1, a));
    await store.apply(started(2, b));
    await store.apply({ seq: 3, event: createEvent('IdpSessionEnded', { issuer: a.issuer, sid: 'one', sub: null }) });
    t.equal(await store.getLiveSession(a.sessionId), null);
    t.ok(await store.getLiveSession(b.sessionId));
  });

  t.test('a SessionStarted under an IdP session that already ended (a login racing its back-channel logout) is not live', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const late = sampleSession({ sid: 'gone' });
    const otherIssuer = sampleSession({ sid: 'gone', issuer: 'http://other-idp.test' });
    const otherSid = sampleSession({ sid: 'kept' });
    await store.apply({ seq: 1, event: createEvent('IdpSessionEnded', { issuer: late.issuer, sid: 'gone', sub: null }) });
    await store.apply(started(2, late));
    await store.apply(started(3, otherIssuer));
    await store.apply(started(4, otherSid));
    t.equal(await store.getLiveSession(late.sessionId), null, 'the IdP session it belongs to has ended');
    t.same((await store.listLiveSessions({ sub: 'alice' })).map((s) => s.sessionId).sort(), [otherIssuer.sessionId, otherSid.sessionId].sort());
    t.ok(await store.getLiveSession(otherIssuer.sessionId), 'the same sid at another issuer is another IdP session');
    t.ok(await store.getLiveSession(otherSid.sessionId));
  });

  t.test('idpSessionEnded tells which IdP sessions a back-channel logout ended, per issuer and sid', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    t.equal(await store.idpSessionEnded('http://idp.test', 'gone'), false, 'nothing ended yet');
    await store.apply({ seq: 1, event: createEvent('IdpSessionEnded', { issuer: 'http://idp.test', sid: 'gone', sub: null }) });
    await store.apply({ seq: 2, event: createEvent('IdpSessionEnded', { issuer: 'http://idp.test', sid: null, sub: 'bob' }) });
    t.equal(await store.idpSessionEnded('http://idp.test', 'gone'), true);
    t.equal(await store.idpSessionEnded('http://other-idp.test', 'gone'), false, 'the same sid at another issuer is another IdP session');
    t.equal(await store.idpSessionEnded('http://idp.test', 'kept'), false);
  });

  t.test('IdpSessionEnded by sub ends that user’s sessions from that issuer only', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const a = sampleSession();
    const other = sampleSession({ issuer: 'http://other-idp.test' });
    await store.apply(started(1, a));
    await store.apply(started(2, other));
    await store.apply({ seq: 3, event: createEvent('IdpSessionEnded', { issuer: a.issuer, sid: null, sub: 'alice' }) });
    t.equal(await store.getLiveSession(a.sessionId), null);
    t.ok(await store.getLiveSession(other.sessionId));
  });

  t.test('waitForApplied resolves when the sequence is applied, false on timeout', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const waiting = store.waitForApplied(1, 2000);
    await store.apply(started(1, sampleSession()));
    t.equal(await waiting, true);
    t.equal(await store.waitForApplied(5, 30), false);
  });

  t.test('consumeOnce accepts a key once', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    t.equal(await store.consumeOnce('state-1', 60_000), true);
    t.equal(await store.consumeOnce('state-1', 60_000), false);
    t.equal(await store.consumeOnce('state-2', 60_000), true);
    await store.releaseOnce('state-1');
    t.equal(await store.consumeOnce('state-1', 60_000), true, 'a released key can be consumed again');
    t.equal(await store.consumeOnce('state-1', 60_000), false);
    await store.releaseOnce('never-consumed');
  });

  t.test('settleOnce keeps an outcome under a consumed key until it is released; never consumes a key', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    await store.settleOnce('jti-0', 'ignored');
    t.equal(await store.onceOutcome('jti-0'), null, 'a key never consumed holds no outcome');
    t.equal(await store.consumeOnce('jti-0', 60_000), true, 'settling a key that is not consumed does not consume it');
    t.equal(await store.onceOutcome('jti-0'), null, 'consumed, not settled yet');
    await store.settleOnce('jti-0', '{"seq":7}');
    t.equal(await store.onceOutcome('jti-0'), '{"seq":7}');
    t.equal(await store.consumeOnce('jti-0', 60_000), false, 'a settled key stays consumed');
    t.equal(await store.onceOutcome('jti-1'), null);
    await store.releaseOnce('jti-0');
    t.equal(await store.onceOutcome('jti-0'), null, 'released: the outcome goes with it');
    t.equal(await store.consumeOnce('jti-0', 60_000), true);
    t.equal(await store.onceOutcome('jti-0'), null, 'consumed again: no outcome of the earlier use');
    t.equal(await store.consumeOnce('with-outcome', 60_000, 'pending'), true, 'consumed with an outcome at once');
    t.equal(await store.onceOutcome('with-outcome'), 'pending');
    t.equal(await store.consumeOnce('with-outcome', 60_000, 'other'), false, 'still consumed once');
    t.equal(await store.onceOutcome('with-outcome'), 'pending', 'a refused consumption changes nothing');
    await store.settleOnce('with-outcome', 'done');
    t.equal(await store.onceOutcome('with-outcome'), 'done', 'settling replaces it');
    t.equal(await store.consumeOnce('short', 30), true);
    await store.settleOnce('short', '1');
    await new Promise((r) => setTimeout(r, 80));
    t.equal(await store.onceOutcome('short'), null, 'the outcome expires with the key');
    t.equal(await store.consumeOnce('short', 60_000), true);
  });

  t.test('dueForRefresh: live sessions whose refreshAt has come, earliest first, at most limit', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const now = Date.now();
    const a = sampleSession({ refreshToken: 'rt-a', refreshAt: now - 1_000 });
    const b = sampleSession({ refreshToken: 'rt-b', refreshAt: now - 3_000 });
    const later = sampleSession({ refreshToken: 'rt-later', refreshAt: now + 60_000 });
    const never = sampleSession({ refreshToken: null, refreshAt: null });
    const legacy = sampleSession();
    for (const [i, s] of [a, b, later, never, legacy].entries()) await store.apply(started(i + 1, s));
    t.same(await store.dueForRefresh(now, 10), [b.sessionId, a.sessionId], 'due ones only, earliest first');
    t.same(await store.dueForRefresh(now, 1), [b.sessionId], 'limit respected');
    t.same(await store.dueForRefresh(now - 2_000, 10), [b.sessionId], 'refreshAt ≤ now');
    t.same(await store.dueForRefresh(now + 60_000, 10), [b.sessionId, a.sessionId, later.sessionId], 'a session without refreshAt is never due');
    t.same(await store.dueForRefresh(now, 0), [], 'limit 0 → none');
  });

  t.test('dueForRefresh never returns an ended, signed-out or expired session', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const now = Date.now();
    const endedOne = sampleSession({ refreshAt: now - 4_000 });
    const signedOutOne = sampleSession({ sub: 'bob', sid: 'bob-sid', refreshAt: now - 3_000 });
    const expiring = sampleSession({ sub: 'carol', sid: 'carol-sid', refreshAt: now - 2_000, expiresAt: now + 30_000 });
    const live = sampleSession({ refreshAt: now - 1_000 });
    for (const [i, s] of [endedOne, signedOutOne, expiring, live].entries()) await store.apply(started(i + 1, s));
    await store.apply(ended(5, endedOne.sessionId));
    await store.apply(signedOut(6, 'bob'));
    t.same(await store.dueForRefresh(now, 10), [expiring.sessionId, live.sessionId]);
    t.same(await store.dueForRefresh(now + 60_000, 10), [live.sessionId], 'expired at that time → not due');
    await store.apply(started(7, sampleSession({ sub: 'bob', sid: 'bob-sid-2' })));
    t.same(await store.dueForRefresh(now, 10), [live.sessionId], 'a later login of the user does not bring the signed-out session back');
  });

  t.test('a session started again under an expired one’s id without refreshAt is not due', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const first = sampleSession({ sessionId: 'header-credential', refreshAt: Date.now() - 1_000, expiresAt: Date.now() + 150 });
    await store.apply(started(1, first));
    await new Promise((r) => setTimeout(r, 300)); // let the first record expire (Redis: its TTL)
    const again = sampleSession({ sessionId: 'header-credential', createdAt: Date.now() });
    await store.apply(started(2, again));
    t.equal((await store.getLiveSession(again.sessionId))?.seq, 2, 'the new session is live');
    t.same(await store.dueForRefresh(Date.now(), 10), [], 'the expired record’s schedule is not inherited');
  });

  t.test('SessionRefreshed replaces claims and tokens, keeps seq, createdAt and expiresAt, and moves or clears the schedule', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const now = Date.now();
    const s = sampleSession({ refreshToken: 'rt-1', refreshAt: now - 1_000, keyId: 'k1' });
    await store.apply(started(1, s));
    // An empty array, an empty object and a 16-digit number must come back exactly as sent.
    const claims = { sub: 'alice', groups: [], extra: {}, big: 1234567890123456, name: 'Älice "A" \\ /' };
    await store.apply(refreshed(2, sampleRefresh(s.sessionId, { claims, accessToken: 'at-2', idToken: null, refreshToken: 'rt-2', refreshAt: now + 60_000 })));
    const got = await store.getLiveSession(s.sessionId);
    t.same(got?.claims, claims);
    t.strictSame(got?.claims, claims, 'claims byte-exact (empty array stays an array)');
    t.equal(got?.accessToken, 'at-2');
    t.equal(got?.idToken, null);
    t.equal(got?.refreshToken, 'rt-2');
    t.equal(got?.refreshAt, now + 60_000);
    t.equal(got?.seq, 1, 'seq is the SessionStarted’s');
    t.equal(got?.createdAt, s.createdAt);
    t.equal(got?.expiresAt, s.expiresAt);
    t.equal(got?.keyId, 'k1');
    t.equal(got?.sub, 'alice');
    t.equal(await store.appliedSeq(), 2);
    t.same(await store.dueForRefresh(now, 10), [], 'moved to its new refreshAt');
    t.same(await store.dueForRefresh(now + 60_000, 10), [s.sessionId]);
    await store.apply(refreshed(3, sampleRefresh(s.sessionId, { refreshToken: null, refreshAt: null })));
    t.same(await store.dueForRefresh(now + 3_600_000 - 1, 10), [], 'refreshAt null → never due again');
    t.equal((await store.getLiveSession(s.sessionId))?.refreshToken, null);
    t.same(
      (await store.listLiveSessions({ sub: 'alice' })).map((r) => [r.sessionId, r.accessToken, r.seq]),
      [[s.sessionId, 'at-refreshed', 1]],
      'listings see the refresh too',
    );
  });

  t.test('SessionRefreshed is idempotent by sequence', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const s = sampleSession();
    await store.apply(started(1, s));
    const second = refreshed(2, sampleRefresh(s.sessionId, { accessToken: 'at-2', refreshAt: Date.now() + 1_000 }));
    await store.apply(second);
    await store.apply(refreshed(3, sampleRefresh(s.sessionId, { accessToken: 'at-3', refreshAt: null })));
    await store.apply(second);
    t.equal((await store.getLiveSession(s.sessionId))?.accessToken, 'at-3', 'the replayed older refresh changes nothing');
    t.same(await store.dueForRefresh(Date.now() + 10_000, 10), [], 'nor the schedule');
    t.equal(await store.appliedSeq(), 3);
  });

  t.test('SessionRefreshed never revives an ended, signed-out or unknown session', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const gone = sampleSession();
    const out = sampleSession({ sub: 'bob', sid: 'bob-sid' });
    await store.apply(started(1, gone));
    await store.apply(started(2, out));
    await store.apply(ended(3, gone.sessionId));
    await store.apply(signedOut(4, 'bob'));
    const due = { refreshAt: Date.now() - 1 };
    await store.apply(refreshed(5, sampleRefresh(gone.sessionId, due)));
    await store.apply(refreshed(6, sampleRefresh(out.sessionId, due)));
    await store.apply(refreshed(7, sampleRefresh('never-seen', due)));
    t.equal(await store.appliedSeq(), 7, 'each refresh is applied (as a no-op)');
    t.equal(await store.getLiveSession(gone.sessionId), null);
    t.equal(await store.getLiveSession(out.sessionId), null);
    t.equal(await store.getLiveSession('never-seen'), null);
    t.same(await store.dueForRefresh(Date.now(), 10), [], 'none of them is scheduled');
    await store.apply(started(8, gone));
    t.equal(await store.getLiveSession(gone.sessionId), null, 'a later replay of the ended session’s start stays dead');
    t.same(await store.dueForRefresh(Date.now(), 10), []);
  });

  t.test('postponeRefresh moves a scheduled session; it never schedules an unscheduled, ended or unknown one', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const now = Date.now();
    const s = sampleSession({ refreshAt: now - 1_000 });
    const noRefresh = sampleSession({ refreshAt: null });
    const gone = sampleSession({ refreshAt: now - 2_000 });
    await store.apply(started(1, s));
    await store.apply(started(2, noRefresh));
    await store.apply(started(3, gone));
    await store.apply(ended(4, gone.sessionId));
    await store.postponeRefresh(s.sessionId, now + 30_000);
    await store.postponeRefresh(noRefresh.sessionId, now - 5_000);
    await store.postponeRefresh(gone.sessionId, now - 5_000);
    await store.postponeRefresh('never-seen', now - 5_000);
    t.same(await store.dueForRefresh(now, 10), [], 'postponed; nothing else scheduled');
    t.same(await store.dueForRefresh(now + 30_000, 10), [s.sessionId], 'due at its new time');
    await store.postponeRefresh(s.sessionId, now - 500);
    t.same(await store.dueForRefresh(now, 10), [s.sessionId], 'may move earlier too');
  });

  t.test('recordActivity: a later use wins, an earlier one changes nothing, unknown and ended sessions are ignored', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const t0 = Date.now() - 60_000;
    const a = sampleSession({ createdAt: t0 });
    const b = sampleSession({ createdAt: t0 + 1 });
    const gone = sampleSession({ createdAt: t0 + 2 });
    for (const [i, s] of [a, b, gone].entries()) await store.apply(started(i + 1, s));
    await store.apply(ended(4, gone.sessionId));
    t.equal(await store.lastActivity(a.sessionId), t0, 'the start counts as the first use');
    await store.recordActivity([
      { sessionId: a.sessionId, provider: 'app', at: t0 + 5_000 },
      { sessionId: b.sessionId, provider: 'app', at: t0 + 7_000 },
      { sessionId: 'never-seen', provider: 'app', at: t0 + 9_000 },
      { sessionId: gone.sessionId, provider: 'app', at: t0 + 9_000 },
    ]);
    t.equal(await store.lastActivity(a.sessionId), t0 + 5_000);
    t.equal(await store.lastActivity(b.sessionId), t0 + 7_000);
    await store.recordActivity([{ sessionId: a.sessionId, provider: 'app', at: t0 + 1_000 }]);
    t.equal(await store.lastActivity(a.sessionId), t0 + 5_000, 'an earlier use changes nothing');
    await store.recordActivity([]);
    t.equal(await store.lastActivity('never-seen'), null);
    t.equal(await store.lastActivity(gone.sessionId), null);
    t.same(await store.idleSessions('app', Date.now(), 10), [a.sessionId, b.sessionId], 'the unknown and ended ids were not added');
  });

  t.test('recordActivity is kept under the session’s own provider, whatever the report says', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const t0 = Date.now() - 60_000;
    const a = sampleSession({ createdAt: t0 });
    await store.apply(started(1, a));
    await store.recordActivity([{ sessionId: a.sessionId, provider: 'other', at: t0 + 30_000 }]);
    t.same(await store.idleSessions('other', Date.now(), 10), [], 'not listed under the reported provider');
    t.same(await store.idleSessions('app', t0 + 30_000, 10), [], 'its own provider saw the use');
    t.same(await store.idleSessions('app', t0 + 30_001, 10), [a.sessionId]);
  });

  t.test('lastActivity is null for a session that is not live', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const gone = sampleSession();
    const out = sampleSession({ sub: 'bob', sid: 'bob-sid' });
    await store.apply(started(1, gone));
    await store.apply(started(2, out));
    t.equal(await store.lastActivity(out.sessionId), out.createdAt);
    await store.apply(ended(3, gone.sessionId));
    await store.apply(signedOut(4, 'bob'));
    t.equal(await store.lastActivity(gone.sessionId), null, 'ended');
    t.equal(await store.lastActivity(out.sessionId), null, 'signed out');
    await store.recordActivity([{ sessionId: out.sessionId, provider: 'app', at: Date.now() }]);
    t.equal(await store.lastActivity(out.sessionId), null, 'a late report does not make it live');
  });

  t.test('idleSessions: live sessions of one provider used before a time, oldest first, at most limit; dead ones dropped', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const now = Date.now();
    const a = sampleSession({ createdAt: now - 300_000 });
    const b = sampleSession({ sub: 'bob', sid: 'bob-sid', createdAt: now - 200_000 });
    const c = sampleSession({ createdAt: now - 100_000 });
    const other = sampleSession({ provider: 'other', createdAt: now - 400_000 });
    const gone = sampleSession({ createdAt: now - 500_000 });
    for (const [i, s] of [a, b, c, other, gone].entries()) await store.apply(started(i + 1, s));
    await store.apply(ended(6, gone.sessionId));
    t.same(await store.idleSessions('app', now - 150_000, 10), [a.sessionId, b.sessionId], 'per provider, oldest first');
    t.same(await store.idleSessions('app', now - 150_000, 1), [a.sessionId], 'limit respected');
    t.same(await store.idleSessions('app', now - 200_000, 10), [a.sessionId], 'used before `before` (exclusive)');
    t.same(await store.idleSessions('other', now, 10), [other.sessionId]);
    t.same(await store.idleSessions('nobody', now, 10), []);
    await store.recordActivity([{ sessionId: a.sessionId, provider: 'app', at: now }]);
    t.same(await store.idleSessions('app', now - 150_000, 10), [b.sessionId], 'a recorded use makes it active');
    await store.apply(signedOut(7, 'bob'));
    t.same(await store.idleSessions('app', now - 150_000, 10), [], 'a signed-out session is not idle, it is gone');
    t.same(await store.idleSessions('app', now + 1, 10), [c.sessionId, a.sessionId]);
  });

  t.test('forEachLiveSessionPage hands over every live session once, in pages, and nothing else', async (t) => {
    const store = await make();
    t.teardown(() => store.close());
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const s = sampleSession({ sub: i === 6 ? 'bob' : 'alice', sid: null });
      ids.push(s.sessionId);
      await store.apply(started(i + 1, s));
    }
    await store.apply({ seq: 8, event: createEvent('SessionEnded', { sessionId: ids[0]!, reason: 'test' }) });
    await store.apply({ seq: 9, event: createEvent('UserSignedOut', { sub: 'bob', provider: 'app', reason: 'sign_out' }) });
    const seen: string[] = [];
    let pages = 0;
    await store.forEachLiveSessionPage(async (page) => {
      pages += 1;
      t.ok(page.length > 0, 'no empty page');
      seen.push(...page.map((s) => s.sessionId));
    }, 2);
    t.same([...new Set(seen)].sort(), ids.slice(1, 6).sort(), 'the five live sessions: not the ended one, not the signed-out one');
    t.ok(pages >= 1, `${pages} page(s)`);
  });
}
