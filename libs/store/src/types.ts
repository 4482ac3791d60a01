// The session projection port: what the session service writes and gateways read.
import type { SequencedEvent, SessionStartedData } from '@portcullis/events';

/**
 * A live session as projected from its SessionStarted event (with any later SessionRefreshed applied
 * over it), with the SessionStarted's log sequence as its version: a refresh never changes `seq`.
 */
export type SessionRecord = SessionStartedData & {
  /** Log sequence of the SessionStarted event: the session's version. */
  seq: number;
};

/** Read side used by gateways and the admin CLI. */
export interface SessionReader {
  /** Sequence of the newest event applied to the projection (0 when none). */
  appliedSeq(): Promise<number>;
  /**
   * The session if it is live at `now` (unix ms): recorded, not ended, not expired, and started after
   * its user's last sign-out. Anything else → null. Never throws for a missing session.
   */
  getLiveSession(sessionId: string, now?: number): Promise<SessionRecord | null>;
  /**
   * {@link getLiveSession} without waiting, when this reader can tell from memory (HOT: lets the
   * gateway decide a request synchronously): the record if live, null if known not live, undefined
   * when only `getLiveSession` can tell. Optional: readers without it are always asked asynchronously.
   */
  peekLiveSession?(sessionId: string, now?: number): SessionRecord | null | undefined;
  /**
   * Read-your-writes from memory: resolves with the session once this reader itself has learnt it at
   * exactly version `seq` (e.g. a gateway cache that read its SessionStarted from the log), or
   * undefined after `timeoutMs` or when it cannot tell — then only the projection can. Optional.
   */
  awaitKnownSession?(sessionId: string, seq: number, timeoutMs: number): Promise<SessionRecord | undefined>;
  /**
   * Whether the event log the projection is built from holds `seq` (its last sequence ≥ `seq`), for a
   * reader that follows the log itself (a gateway's cache): a cookie naming such a `seq` that the
   * projection has not applied is then "cannot tell yet" (the projection lags or is being rebuilt),
   * not "no such session". Rejects when the log cannot be asked. Optional: a reader without it (the
   * embedded store, projected in-process from an in-process log) treats such a cookie as stale.
   */
  logHolds?(seq: number): Promise<boolean>;
  /** Live sessions, optionally of one user. */
  listLiveSessions(filter?: { sub?: string }, now?: number): Promise<SessionRecord[]>;
  /** Resolves true once the projection has applied `seq` (false after `timeoutMs`). */
  waitForApplied(seq: number, timeoutMs: number): Promise<boolean>;
}

/** Write side: only the session service applies events. */
export interface SessionProjection {
  /** Applies one event; an event whose seq is not newer than the applied seq changes nothing. */
  apply(e: SequencedEvent): Promise<void>;
}

/** Single-use keys (login state, logout-token jti): true the first time `key` is consumed within `ttlMs`, false after. */
export interface OnceStore {
  /** With `outcome`, the key is consumed already holding it (as {@link settleOnce} would keep it), in the same step. */
  consumeOnce(key: string, ttlMs: number, outcome?: string): Promise<boolean>;
  /** Makes a consumed `key` consumable again: the action it guarded failed and may be retried. */
  releaseOnce(key: string): Promise<void>;
  /**
   * Keeps `outcome` (what the action guarded by `key` did) under a consumed `key` until the key
   * expires, so a repeated request can learn it instead of being refused. Nothing when `key` is not
   * consumed (expired or released): an outcome never consumes a key.
   */
  settleOnce(key: string, outcome: string): Promise<void>;
  /** The outcome settled under `key`; null when there is none (not consumed, released, or consumed and not settled yet). */
  onceOutcome(key: string): Promise<string | null>;
}

/** One use of a session seen by a gateway (for idle timeouts). */
export interface SessionActivity {
  sessionId: string;
  /** The session's provider (activity is kept per provider, whose `idle_timeout` applies). */
  provider: string;
  /** Unix ms of the latest request that used the session. */
  at: number;
}

/**
 * Background upkeep of live sessions, outside the event log: which sessions are due for a token
 * refresh (derived from the log's refreshAt), and when each was last used (reported by gateways, kept
 * across a projection rebuild because the log does not hold it).
 */
export interface SessionUpkeep {
  /**
   * Ids of live sessions whose refreshAt ≤ `now`, earliest first, at most `limit`. Ended, expired or
   * signed-out sessions are never returned (and are forgotten from the schedule when met).
   */
  dueForRefresh(now: number, limit: number): Promise<string[]>;
  /** Moves a live session's next refresh to `at` (a transient IdP failure is retried later). Unknown sessions: no-op. */
  postponeRefresh(sessionId: string, at: number): Promise<void>;
  /**
   * Records uses of sessions. A later `at` wins, an earlier one changes nothing; sessions that are not
   * recorded (ended, unknown) are ignored. A session's start counts as its first use.
   */
  recordActivity(entries: readonly SessionActivity[]): Promise<void>;
  /** Unix ms of the session's latest recorded use (its start when never used); null when not live. */
  lastActivity(sessionId: string): Promise<number | null>;
  /**
   * Ids of live sessions of `provider` last used before `before` (unix ms), oldest first, at most
   * `limit`. Sessions no longer live are forgotten from the activity index when met.
   */
  idleSessions(provider: string, before: number, limit: number): Promise<string[]>;
  /**
   * Every live session, handed over a page at a time (about `pageSize`, default 500) so that memory
   * stays bounded however many sessions there are. Pages come in no particular order; a session
   * started or ended during the walk may or may not be included. `onPage` is awaited before the next
   * page is read.
   */
  forEachLiveSessionPage(onPage: (sessions: SessionRecord[]) => Promise<void>, pageSize?: number): Promise<void>;
}

/**
 * IdP sessions a back-channel logout ended (an IdpSessionEnded with a `sid`, remembered 24 h): a
 * SessionStarted under one of them holds nothing, so a credential carrying its `sid` is refused before
 * anything is appended.
 */
export interface IdpSessionTombstones {
  /** True when an IdpSessionEnded for (`issuer`, `sid`) was applied within the last 24 h. */
  idpSessionEnded(issuer: string, sid: string): Promise<boolean>;
}

/** Everything a process needs from the store. */
export interface SessionStore extends SessionReader, SessionProjection, OnceStore, SessionUpkeep, IdpSessionTombstones {
  close(): Promise<void>;
}
