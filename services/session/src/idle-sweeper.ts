// Ends sessions that saw no request for their provider's idle_timeout: one replica sweeps each interval, cluster-wide.
import type { EventLog } from '@portcullis/bus';
import type { ProviderConfig } from '@portcullis/config';
import { createEvent } from '@portcullis/events';
import type { OnceStore, SessionReader, SessionUpkeep } from '@portcullis/store';

/** The provider fields the session upkeep reads. */
export type UpkeepProvider = Pick<ProviderConfig, 'name' | 'idle_timeout' | 'cookie_secret'> & Partial<Pick<ProviderConfig, 'issuer'>>;

/** Sessions asked for per store read. */
const IDLE_BATCH = 500;
/** Reads per provider per sweep: 20 × 500 = 10 000 sessions ended per interval at most; the rest wait for the next. */
const MAX_ROUNDS = 20;
/** How long a sweep waits for the projection to drop what it just ended before reading again. */
const PROJECTION_WAIT_MS = 5_000;
/** Appends in flight at once. */
const APPEND_CONCURRENCY = 50;

/** The reason recorded on a SessionEnded for an idle session. */
export function idleReason(idleTimeoutSeconds: number): string {
  return `idle timeout: no request for ${idleTimeoutSeconds} s`;
}

/** Appends events with bounded concurrency; resolves with the highest sequence (0 when none). */
export async function appendAll(log: EventLog, events: Parameters<EventLog['append']>[0][]): Promise<number> {
  let last = 0;
  for (let i = 0; i < events.length; i += APPEND_CONCURRENCY) {
    const seqs = await Promise.all(events.slice(i, i + APPEND_CONCURRENCY).map((e) => log.append(e)));
    for (const s of seqs) if (s > last) last = s;
  }
  return last;
}

/** Dependencies of {@link sweepIdleSessions}. */
export interface IdleSweepDeps {
  log: EventLog;
  store: Pick<SessionUpkeep, 'idleSessions'> & OnceStore & Pick<SessionReader, 'waitForApplied'>;
}

/** What one sweep did, per provider that had sessions to end. */
export interface IdleSweepResult {
  /** Providers whose turn this replica took (another replica had the others). */
  swept: string[];
  /** Provider → sessions ended (SessionEnded appended; a concurrent duplicate collapses in the log). */
  ended: Record<string, number>;
}

/**
 * One sweep at `now`: for each provider with an idle timeout whose turn this replica wins
 * (`consumeOnce('idle-sweep:<provider>:<slot>')`), ends its sessions last used before
 * now − idle_timeout − graceMs. Event ids are `idle:<sessionId>`, so replicas that overlap (clock
 * skew at a slot boundary) still record one SessionEnded per session.
 */
export async function sweepIdleSessions(
  deps: IdleSweepDeps,
  providers: readonly UpkeepProvider[],
  opts: { now: number; sweepMs: number; graceMs: number },
): Promise<IdleSweepResult> {
  const result: IdleSweepResult = { swept: [], ended: {} };
  const slot = Math.floor(opts.now / opts.sweepMs);
  for (const p of providers) {
    if (p.idle_timeout === null) continue;
    if (!(await deps.store.consumeOnce(`idle-sweep:${p.name}:${slot}`, opts.sweepMs * 2))) continue;
    result.swept.push(p.name);
    const before = opts.now - p.idle_timeout * 1000 - opts.graceMs;
    const reason = idleReason(p.idle_timeout);
    let ended = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const ids = await deps.store.idleSessions(p.name, before, IDLE_BATCH);
      if (ids.length === 0) break;
      const last = await appendAll(
        deps.log,
        ids.map((sessionId) => createEvent('SessionEnded', { sessionId, reason }, `idle:${sessionId}`)),
      );
      ended += ids.length;
      if (ids.length < IDLE_BATCH) break;
      // A full batch: read on once the projection has dropped these, or leave the rest to the next sweep.
      if (!(await deps.store.waitForApplied(last, PROJECTION_WAIT_MS))) break;
    }
    if (ended > 0) result.ended[p.name] = ended;
  }
  return result;
}
