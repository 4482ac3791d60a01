// Scenario 6: a million sessions in Redis (memory per session), gateway cache memory per entry, and sign-out of a user with many sessions.
import { createEvent } from '@portcullis/events';
import { createRedisStore } from '@portcullis/store';
import { startRedisServer } from '@portcullis/testkit';
import { Pool } from 'undici';
import type { Environment } from '../lib/environment.ts';
import { startHelper } from '../lib/processes.ts';
import type { ScenarioReport } from '../lib/report-types.ts';
import { appendSessions, sessionData } from '../lib/sessions.ts';

type Log = (msg: string) => void;
/** Applies in flight at once when building the projection directly (ioredis pipelines them on one connection, in order). */
const WINDOW = 5_000;
const SMALL_USER = 100;

const usedMemory = async (url: string): Promise<number> => {
  const { Redis } = await import('ioredis');
  const r = new Redis(url);
  try {
    const info = await r.info('memory');
    return Number(/used_memory:(\d+)/.exec(info)![1]);
  } finally {
    r.disconnect();
  }
};

export async function scaleScenario(env: Environment, opts: { sessions: number; bigUser: number }, log: Log): Promise<ScenarioReport> {
  const figures: ScenarioReport['figures'] = [];
  const notes: string[] = [];

  // ---- A. the projection built directly in a fresh Redis ------------------------------------------
  const redis = await startRedisServer();
  const store = await createRedisStore({ redis: { ...env.config.cluster!.redis, url: redis.url } });
  let seq = 0;
  const applyAll = async (events: Array<Parameters<typeof createEvent<'SessionStarted'>>[1]>) => {
    for (let i = 0; i < events.length; i += WINDOW) {
      await Promise.all(events.slice(i, i + WINDOW).map((d) => store.apply({ seq: ++seq, event: createEvent('SessionStarted', d) })));
    }
  };
  try {
    const before = await usedMemory(redis.url);
    const t0 = performance.now();
    const perUser = 2;
    let recordBytes = 0;
    for (let done = 0; done < opts.sessions; done += 50_000) {
      const n = Math.min(50_000, opts.sessions - done);
      const batch = Array.from({ length: n }, (_, i) => sessionData({ provider: 'app', issuer: env.idp.issuer, sub: `scale-user-${Math.floor((done + i) / perUser)}` }));
      recordBytes = JSON.stringify({ ...batch[0]!, seq: 1 }).length;
      await applyAll(batch);
      if (opts.sessions >= 200_000 && (done / 50_000) % 4 === 3) log(`    ${done + n} sessions applied`);
    }
    const buildSeconds = (performance.now() - t0) / 1000;
    const after = await usedMemory(redis.url);
    figures.push(
      { name: 'sessions built in Redis (direct apply, pipelined)', value: opts.sessions },
      { name: 'build rate', value: Math.round(opts.sessions / buildSeconds), unit: 'sessions/s' },
      { name: 'build time', value: buildSeconds.toFixed(1), unit: 's' },
      { name: 'Redis used_memory per session', value: Math.round((after - before) / opts.sessions), unit: 'bytes' },
      { name: 'session record JSON size', value: recordBytes, unit: 'bytes' },
    );
    log(`  ${opts.sessions} sessions: ${Math.round(opts.sessions / buildSeconds)}/s, ${Math.round((after - before) / opts.sessions)} B each in Redis`);

    // Direct apply cost of a user's sessions and of their sign-out, with the million in place.
    for (const count of [SMALL_USER, opts.bigUser]) {
      const sub = `scale-many-${count}`;
      const ta = performance.now();
      await applyAll(Array.from({ length: count }, () => sessionData({ provider: 'app', issuer: env.idp.issuer, sub })));
      const insertMs = performance.now() - ta;
      const ts = performance.now();
      await store.apply({ seq: ++seq, event: createEvent('UserSignedOut', { sub, provider: 'app', reason: 'sign_out' }) });
      const signOutMs = performance.now() - ts;
      figures.push(
        { name: `direct apply: ${count} SessionStarted of one user`, value: insertMs.toFixed(0), unit: `ms (${((1000 * insertMs) / count).toFixed(0)} µs each)` },
        { name: `direct apply: UserSignedOut of a user with ${count} sessions`, value: signOutMs.toFixed(1), unit: 'ms' },
      );
    }
  } finally {
    await store.close();
    await redis.stop();
  }

  // ---- B. gateway cache memory per entry (own process, --expose-gc) -----------------------------
  const entries = Math.min(opts.sessions, 100_000);
  const worker = await startHelper('cache-memory', 'workers/cache-memory.ts', [String(entries), env.idp.issuer], ['--expose-gc']);
  const mem = worker.ready as { entries: number; bytesPerEntry: number; heapDeltaBytes: number };
  await worker.stop();
  figures.push(
    { name: 'gateway cache (CachedSessionReader) heap per entry', value: Math.round(mem.bytesPerEntry), unit: `bytes (${mem.entries} entries; default cap 100 000)` },
  );

  // ---- C. sign-out of a user with many sessions through the running cluster ----------------------
  const signOutTimes: Record<number, number> = {};
  let appendRate = 0;
  const pool = new Pool(`http://127.0.0.1:${env.gatewayPort}`, { connections: 2 });
  try {
    for (const count of [SMALL_USER, opts.bigUser]) {
      const sub = `cluster-many-${count}-${Date.now().toString(36)}`;
      const made = await appendSessions(env, 'app', Array.from({ length: count }, () => sub));
      appendRate = made.appendsPerSecond;
      log(`  ${count} sessions of one user through NATS: ${Math.round(made.appendsPerSecond)} appends/s, projected after ${Math.round(made.projectedAfterMs)} ms`);
      const cookie = made.sessions[0]!.cookie;
      const ts = performance.now();
      const r = await pool.request({ method: 'GET', path: '/outpost.goauthentik.io/sign_out', headers: { host: env.appHost, cookie } });
      await r.body.dump();
      const ms = performance.now() - ts;
      signOutTimes[count] = ms;
      // Spot check: another of the user's sessions is now refused.
      const other = made.sessions[made.sessions.length - 1]!.cookie;
      const probe = await pool.request({ method: 'GET', path: '/small', headers: { host: env.appHost, cookie: other } });
      await probe.body.dump();
      figures.push(
        { name: `cluster: ${count} sessions of one user, append → projected`, value: Math.round(made.projectedAfterMs), unit: `ms (${Math.round(made.appendsPerSecond)} appends/s)` },
        { name: `cluster: sign-out of a user with ${count} sessions (append → projection → barrier)`, value: ms.toFixed(1), unit: `ms (answer ${r.statusCode}; another session then got ${probe.statusCode})` },
      );
      if (r.statusCode !== 302 || probe.statusCode === 200) throw new Error(`sign-out of ${count} sessions answered ${r.statusCode}; a later probe got ${probe.statusCode}`);
    }
  } finally {
    await pool.close();
  }
  const growth = signOutTimes[opts.bigUser]! / signOutTimes[SMALL_USER]!;
  figures.push({ name: `sign-out time ratio ${opts.bigUser} vs ${SMALL_USER} sessions`, value: growth.toFixed(2) });
  notes.push(
    'A: sessions applied with `createRedisStore(...).apply` (the projection\'s own Lua script) to a fresh redis-server, 2 sessions per user, in windows of 5 000 pipelined calls; memory = `INFO memory` used_memory delta ÷ N (record + expiry + per-user index set).',
    'B: a CachedSessionReader filled through misses from a SessionReader that builds records on demand (so only the cache holds them), heap delta after `global.gc()`.',
    `C: ${SMALL_USER} vs ${opts.bigUser} sessions of one user appended to NATS and projected by the session process, then one sign-out through gateway 0; the answer waits for the projection and the gateways' barrier.`,
    `Feasibility: at the measured NATS append rate (${Math.round(appendRate)}/s, 64 in flight), building ${opts.sessions} sessions through the log would take about ${Math.round(opts.sessions / appendRate)} s before projection, hence the direct apply for A.`,
  );
  return {
    id: 6,
    title: 'Scale: sessions in Redis, cache memory, sign-out of a user with many sessions',
    comparisons: [],
    figures,
    targets: [],
    notes,
  };
}
