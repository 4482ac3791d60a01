// `portcullis sessions revoke`: appends a revocation and waits until it holds on every live gateway, like sign_out.
import type { EventLog, RequestBus } from '@portcullis/bus';
import { createEvent } from '@portcullis/events';
import { PresenceTracker, collectRevocationAcks } from '@portcullis/gateway';
import type { SessionReader, SessionRecord } from '@portcullis/store';

/**
 * Gateways announce themselves every second: listening this long before gathering acks means every
 * live gateway is known, so none is left out of the barrier.
 */
export const PRESENCE_WARMUP_MS = 1_200;

/** What to revoke: every session of a user (sub), or one session. */
export type RevokeTarget = { user: string } | { session: string };

/** Dependencies of {@link revokeSessions}. */
export interface RevokeDeps {
  log: EventLog;
  rpc: RequestBus;
  store: SessionReader & { rebuildInProgress(): Promise<boolean> };
  /** The propagation bound (config outpost.signout_propagation_timeout_ms). */
  boundMs: number;
  /** Default {@link PRESENCE_WARMUP_MS}. */
  presenceWarmupMs?: number;
}

/** The outcome of one revocation. */
export interface RevokeResult {
  event: 'UserSignedOut' | 'SessionEnded';
  /** Log sequence of the revocation. */
  seq: number;
  /** The target's live sessions just before; null when unknown (a rebuild was running). */
  liveBefore: SessionRecord[] | null;
  /** Gateways heard from (heartbeats) and therefore waited for. */
  gateways: number;
  /** The Redis projection applied the revocation within the bound. */
  projected: boolean;
  /** Every live gateway confirmed it within the bound. */
  acked: boolean;
  /** From the revocation being recorded to both confirmations (or the bound). */
  elapsedMs: number;
}

/**
 * Appends `UserSignedOut { provider: '(admin)' }` or `SessionEnded`, then waits (at most `boundMs`) for
 * the projection and every live gateway to apply it — the sign-out guarantee, for an operator.
 */
export async function revokeSessions(deps: RevokeDeps, target: RevokeTarget): Promise<RevokeResult> {
  const presence = new PresenceTracker(deps.rpc, { warmupMs: deps.presenceWarmupMs ?? PRESENCE_WARMUP_MS });
  // Listening starts first: the warm-up overlaps the look-up of what is about to be revoked.
  presence.start();
  try {
    const warmedUp = new Promise((r) => setTimeout(r, deps.presenceWarmupMs ?? PRESENCE_WARMUP_MS));
    const liveBefore = await findLive(deps.store, target);
    await warmedUp;
    const event =
      'user' in target
        ? createEvent('UserSignedOut', { sub: target.user, provider: '(admin)', reason: 'admin revoke' })
        : createEvent('SessionEnded', { sessionId: target.session, reason: 'admin revoke' });
    const seq = await deps.log.append(event);
    const gateways = presence.alive(Date.now(), deps.boundMs).length;
    const started = performance.now();
    const [projected, acked] = await Promise.all([
      deps.store.waitForApplied(seq, deps.boundMs),
      collectRevocationAcks(deps.rpc, presence, seq, deps.boundMs),
    ]);
    return { event: event.type, seq, liveBefore, gateways, projected, acked, elapsedMs: performance.now() - started };
  } finally {
    await presence.stop();
  }
}

async function findLive(store: RevokeDeps['store'], target: RevokeTarget): Promise<SessionRecord[] | null> {
  // While rebuilding, reads are refused: how many were live is unknown, and the revocation goes ahead.
  if (await store.rebuildInProgress()) return null;
  try {
    if ('user' in target) return await store.listLiveSessions({ sub: target.user });
    const s = await store.getLiveSession(target.session);
    return s ? [s] : [];
  } catch (err) {
    // A rebuild that began after the check above.
    if ((err as { code?: unknown } | null)?.code === 'PORTCULLIS_STORE_REBUILDING') return null;
    throw err;
  }
}

/** The report of a revocation: what was revoked and how fast it held (stdout), what lagged (stderr), and the exit code. */
export function formatRevokeReport(target: RevokeTarget, r: RevokeResult, boundMs: number): { stdout: string; stderr: string; exitCode: number } {
  let what: string;
  if ('user' in target) {
    const count =
      r.liveBefore === null
        ? 'how many were live is unknown (a rebuild is in progress)'
        : `${r.liveBefore.length} live session${r.liveBefore.length === 1 ? '' : 's'}`;
    what = `revoked every session of user ${target.user}: ${count} (UserSignedOut #${r.seq})`;
  } else if (r.liveBefore === null) {
    what = `revoked session ${target.session} (SessionEnded #${r.seq}; whether it was live is unknown: a rebuild is in progress)`;
  } else if (r.liveBefore.length === 0) {
    what = `session ${target.session} was not live; SessionEnded #${r.seq} recorded anyway (harmless)`;
  } else {
    what = `revoked session ${target.session} of user ${r.liveBefore[0]!.sub} (SessionEnded #${r.seq})`;
  }
  const where = `${r.gateways} live gateway${r.gateways === 1 ? '' : 's'}`;
  const ms = Math.round(r.elapsedMs);
  if (r.projected && r.acked) {
    return { stdout: `${what}\nholds on ${where} and in the Redis projection: propagated in ${ms} ms\n`, stderr: '', exitCode: 0 };
  }
  const lagging = [
    r.projected ? null : `the Redis projection had not applied #${r.seq} (is a session service running? is a rebuild in progress?)`,
    r.acked ? null : `not every one of the ${where} confirmed #${r.seq} (those that did not stop trusting their cache and read Redis)`,
  ].filter((x) => x !== null);
  return {
    stdout: `${what}\n`,
    stderr: `not confirmed within the bound of ${boundMs} ms (outpost.signout_propagation_timeout_ms): ${lagging.join('; ')}\n`,
    exitCode: 1,
  };
}
