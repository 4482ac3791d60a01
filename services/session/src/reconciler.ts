// Ends the sessions a config change left without a provider or without the cookie secret that signed them.
import type { EventLog } from '@portcullis/bus';
import { type SessionEnded, createEvent } from '@portcullis/events';
import type { SessionReader, SessionUpkeep } from '@portcullis/store';
import { type UpkeepProvider, appendAll } from './idle-sweeper.ts';

/** How long a reconcile waits for the projection to reach the log's end before listing sessions. */
const CATCH_UP_WAIT_MS = 5_000;

/** Dependencies of {@link reconcileSessions}. */
export interface ReconcileDeps {
  log: EventLog;
  store: Pick<SessionReader, 'waitForApplied'> & Pick<SessionUpkeep, 'forEachLiveSessionPage'>;
  /** `cookieKeyId` from @portcullis/protocol: the fingerprint recorded as SessionStarted.keyId. */
  cookieKeyId: (secret: string) => string;
}

/** Sessions ended by one reconcile, per provider and cause. */
export interface ReconcileResult {
  /** Provider no longer configured → sessions ended. */
  removed: Record<string, number>;
  /** Provider whose cookie secret changed → cookie sessions signed with the old one ended. */
  secretChanged: Record<string, number>;
  /** Provider whose issuer changed → sessions the old identity provider authenticated ended. */
  issuerChanged: Record<string, number>;
}

/** The reason recorded on a SessionEnded whose provider is gone. */
export function removedReason(provider: string): string {
  return `provider "${provider}" was removed from the configuration`;
}

/** The reason recorded on a SessionEnded whose cookie was signed with a secret no longer configured. */
export function secretChangedReason(provider: string): string {
  return `cookie secret of provider "${provider}" changed: cookies signed with the old secret are no longer valid`;
}

/** The reason recorded on a SessionEnded authenticated by an issuer its provider no longer uses. */
export function issuerChangedReason(provider: string): string {
  return `issuer of provider "${provider}" changed: sessions of the previous identity provider are no longer valid`;
}

/**
 * Lists live sessions (after the projection caught up with the log, within a bound) and ends those
 * in `scope` (provider names, or every session) whose provider is not in `providers`, or whose
 * `keyId` is not the fingerprint of their provider's current cookie secret, or whose issuer is not
 * their provider's (when the provider names one). Sessions without a keyId
 * (header authentication, or recorded before keyIds) are left alone. Event ids are
 * `reconcile:<sessionId>:<keyId or 'removed'>`, so replicas reconciling the same change together
 * record one SessionEnded per session. Throws when the store or log fails (nothing is half-decided:
 * a retry appends only what is still missing).
 */
export async function reconcileSessions(
  deps: ReconcileDeps,
  providers: readonly UpkeepProvider[],
  scope: 'all' | ReadonlySet<string>,
): Promise<ReconcileResult> {
  const result: ReconcileResult = { removed: {}, secretChanged: {}, issuerChanged: {} };
  if (scope !== 'all' && scope.size === 0) return result;
  const keyIds = new Map(providers.map((p) => [p.name, deps.cookieKeyId(p.cookie_secret)]));
  const issuers = new Map(providers.map((p) => [p.name, p.issuer]));
  await deps.store.waitForApplied(await deps.log.lastSeq(), CATCH_UP_WAIT_MS);
  // A page at a time: memory stays bounded however many sessions there are.
  await deps.store.forEachLiveSessionPage(async (page) => {
    const events: SessionEnded[] = [];
    for (const s of page) {
      if (scope !== 'all' && !scope.has(s.provider)) continue;
      const current = keyIds.get(s.provider);
      if (current === undefined) {
        events.push(createEvent('SessionEnded', { sessionId: s.sessionId, reason: removedReason(s.provider) }, `reconcile:${s.sessionId}:removed`));
        result.removed[s.provider] = (result.removed[s.provider] ?? 0) + 1;
      } else if (s.keyId !== undefined && s.keyId !== current) {
        events.push(
          createEvent('SessionEnded', { sessionId: s.sessionId, reason: secretChangedReason(s.provider) }, `reconcile:${s.sessionId}:${s.keyId}`),
        );
        result.secretChanged[s.provider] = (result.secretChanged[s.provider] ?? 0) + 1;
      } else if (issuers.get(s.provider) !== undefined && s.issuer !== issuers.get(s.provider)) {
        events.push(
          createEvent('SessionEnded', { sessionId: s.sessionId, reason: issuerChangedReason(s.provider) }, `reconcile:${s.sessionId}:issuer`),
        );
        result.issuerChanged[s.provider] = (result.issuerChanged[s.provider] ?? 0) + 1;
      }
    }
    await appendAll(deps.log, events);
  });
  return result;
}

/**
 * The providers a reload may affect: those removed and those whose cookie secret or issuer changed.
 * Every other provider's sessions are out of a reload's scope.
 */
export function changedProviders(previous: readonly UpkeepProvider[], next: readonly UpkeepProvider[]): Set<string> {
  const now = new Map(next.map((p) => [p.name, p]));
  const changed = new Set<string>();
  for (const p of previous) {
    const n = now.get(p.name);
    if (n?.cookie_secret !== p.cookie_secret || n.issuer !== p.issuer) changed.add(p.name);
  }
  return changed;
}
