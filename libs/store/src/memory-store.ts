// Embedded (single-process) session projection held in memory. Not a mock: the supported
// single-node mode, tested by the same contract tests as the Redis store.
import { SeqWaiters, type SequencedEvent } from '@portcullis/events';
import { IDP_SESSION_TOMBSTONE_MS } from './redis-scripts.ts';
import type { SessionActivity, SessionRecord, SessionStore } from './types.ts';

const SWEEP_INTERVAL_MS = 60_000;

class MemorySessionStore implements SessionStore {
  #applied = 0;
  readonly #sessions = new Map<string, SessionRecord>();
  readonly #byUser = new Map<string, Set<string>>();
  readonly #byIdpSession = new Map<string, Set<string>>();
  /** sub → seq of the user's last sign-out; sessions with seq ≤ it are dead whatever else says. */
  readonly #signOutWatermark = new Map<string, number>();
  /** Consumed single-use key → until when, and the outcome settled under it. */
  readonly #consumed = new Map<string, { until: number; outcome: string | null }>();
  /** Ended session id → its record's createdAt and expiry: a replayed copy of that SessionStarted stays dead. */
  readonly #ended = new Map<string, { createdAt: number; expiresAt: number }>();
  /** IdP sessions (issuer, sid) a back-channel logout ended → until when: a login finishing under one later stays dead. */
  readonly #idpEnded = new Map<string, number>();
  /** Session id → unix ms of its next refresh (live sessions with a refresh token only). */
  readonly #refreshDue = new Map<string, number>();
  /** Session id → unix ms of its latest recorded use (its start until a gateway reports one). */
  readonly #activity = new Map<string, number>();
  readonly #waiters = new SeqWaiters();
  readonly #sweeper: NodeJS.Timeout;

  constructor() {
    this.#sweeper = setInterval(() => this.#sweep(Date.now()), SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  async appliedSeq(): Promise<number> {
    return this.#applied;
  }

  async apply({ seq, event }: SequencedEvent): Promise<void> {
    if (seq <= this.#applied) return;
    switch (event.type) {
      case 'SessionStarted': {
        const d = event.data;
        if (this.#ended.get(d.sessionId)?.createdAt === d.createdAt) break;
        if (d.sid && (this.#idpEnded.get(idpKey(d.issuer, d.sid)) ?? 0) > Date.now()) break;
        this.#sessions.set(d.sessionId, { ...d, seq });
        // The schedule follows the record: a session started again under an expired one's id without a refresh is not due.
        if (d.refreshAt != null) this.#refreshDue.set(d.sessionId, d.refreshAt);
        else this.#refreshDue.delete(d.sessionId);
        this.#activity.set(d.sessionId, Math.max(d.createdAt, this.#activity.get(d.sessionId) ?? 0));
        addTo(this.#byUser, d.sub, d.sessionId);
        if (d.sid) addTo(this.#byIdpSession, idpKey(d.issuer, d.sid), d.sessionId);
        break;
      }
      case 'SessionEnded':
        this.#remove(event.data.sessionId);
        break;
      case 'SessionRefreshed': {
        const d = event.data;
        const s = this.#sessions.get(d.sessionId);
        // Only a live session takes a refresh: never one that ended, expired or was signed out meanwhile.
        if (!s || s.expiresAt <= Date.now() || s.seq <= (this.#signOutWatermark.get(s.sub) ?? 0)) break;
        const { claims, accessToken, idToken, refreshToken, refreshAt } = d;
        this.#sessions.set(d.sessionId, { ...s, claims, accessToken, idToken, refreshToken, refreshAt });
        if (refreshAt === null) this.#refreshDue.delete(d.sessionId);
        else this.#refreshDue.set(d.sessionId, refreshAt);
        break;
      }
      case 'UserSignedOut':
        this.#signOutWatermark.set(event.data.sub, seq);
        for (const id of [...(this.#byUser.get(event.data.sub) ?? [])]) this.#remove(id);
        break;
      case 'IdpSessionEnded': {
        const { issuer, sid, sub } = event.data;
        const ids = sid
          ? [...(this.#byIdpSession.get(idpKey(issuer, sid)) ?? [])]
          : [...(this.#byUser.get(sub ?? '') ?? [])].filter((id) => this.#sessions.get(id)?.issuer === issuer);
        for (const id of ids) this.#remove(id);
        if (sid) this.#idpEnded.set(idpKey(issuer, sid), Date.now() + IDP_SESSION_TOMBSTONE_MS);
        break;
      }
    }
    this.#applied = seq;
    this.#waiters.settle(seq);
  }

  async getLiveSession(sessionId: string, now = Date.now()): Promise<SessionRecord | null> {
    return this.peekLiveSession(sessionId, now);
  }

  /** Everything is in memory: always known. */
  peekLiveSession(sessionId: string, now = Date.now()): SessionRecord | null {
    const s = this.#sessions.get(sessionId);
    if (!s) return null;
    if (s.expiresAt <= now) {
      this.#remove(sessionId);
      return null;
    }
    if (s.seq <= (this.#signOutWatermark.get(s.sub) ?? 0)) return null;
    return s;
  }

  async listLiveSessions(filter: { sub?: string } = {}, now = Date.now()): Promise<SessionRecord[]> {
    const ids = filter.sub !== undefined ? [...(this.#byUser.get(filter.sub) ?? [])] : [...this.#sessions.keys()];
    const out: SessionRecord[] = [];
    for (const id of ids) {
      const s = await this.getLiveSession(id, now);
      if (s) out.push(s);
    }
    return out;
  }

  async forEachLiveSessionPage(onPage: (sessions: SessionRecord[]) => Promise<void>, pageSize = 500): Promise<void> {
    const ids = [...this.#sessions.keys()];
    for (let i = 0; i < ids.length; i += pageSize) {
      const page: SessionRecord[] = [];
      for (const id of ids.slice(i, i + pageSize)) {
        const s = await this.getLiveSession(id);
        if (s) page.push(s);
      }
      if (page.length > 0) await onPage(page);
    }
  }

  waitForApplied(seq: number, timeoutMs: number): Promise<boolean> {
    if (seq <= this.#applied) return Promise.resolve(true);
    return this.#waiters.wait(seq, timeoutMs);
  }

  async consumeOnce(key: string, ttlMs: number, outcome?: string): Promise<boolean> {
    const now = Date.now();
    const held = this.#consumed.get(key);
    if (held !== undefined && held.until > now) return false;
    this.#consumed.set(key, { until: now + ttlMs, outcome: outcome ?? null });
    return true;
  }

  async releaseOnce(key: string): Promise<void> {
    this.#consumed.delete(key);
  }

  async idpSessionEnded(issuer: string, sid: string): Promise<boolean> {
    return (this.#idpEnded.get(idpKey(issuer, sid)) ?? 0) > Date.now();
  }

  async settleOnce(key: string, outcome: string): Promise<void> {
    const held = this.#consumed.get(key);
    if (held !== undefined && held.until > Date.now()) held.outcome = outcome;
  }

  async onceOutcome(key: string): Promise<string | null> {
    const held = this.#consumed.get(key);
    return held !== undefined && held.until > Date.now() ? held.outcome : null;
  }

  async dueForRefresh(now: number, limit: number): Promise<string[]> {
    const due = [...this.#refreshDue].filter(([, at]) => at <= now).sort((a, b) => a[1] - b[1]);
    const out: string[] = [];
    for (const [id] of due) {
      if (out.length >= limit) break;
      if (await this.getLiveSession(id, now)) out.push(id);
      else this.#refreshDue.delete(id);
    }
    return out;
  }

  async postponeRefresh(sessionId: string, at: number): Promise<void> {
    // Only a session still on the schedule moves (as Redis ZADD XX): a postpone never schedules one that has no refresh.
    if (this.#sessions.has(sessionId) && this.#refreshDue.has(sessionId)) this.#refreshDue.set(sessionId, at);
  }

  async recordActivity(entries: readonly SessionActivity[]): Promise<void> {
    for (const { sessionId, at } of entries) {
      const last = this.#activity.get(sessionId);
      if (last !== undefined && this.#sessions.has(sessionId)) this.#activity.set(sessionId, Math.max(last, at));
    }
  }

  async lastActivity(sessionId: string): Promise<number | null> {
    if (!(await this.getLiveSession(sessionId))) return null;
    return this.#activity.get(sessionId) ?? null;
  }

  async idleSessions(provider: string, before: number, limit: number): Promise<string[]> {
    const idle = [...this.#activity].filter(([id, at]) => at < before && this.#sessions.get(id)?.provider === provider).sort((a, b) => a[1] - b[1]);
    const out: string[] = [];
    for (const [id] of idle) {
      if (out.length >= limit) break;
      if (await this.getLiveSession(id)) out.push(id);
      else this.#activity.delete(id);
    }
    return out;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#waiters.cancelAll();
  }

  #remove(sessionId: string): void {
    const s = this.#sessions.get(sessionId);
    if (!s) return;
    this.#ended.set(sessionId, { createdAt: s.createdAt, expiresAt: s.expiresAt });
    this.#sessions.delete(sessionId);
    this.#refreshDue.delete(sessionId);
    this.#activity.delete(sessionId);
    removeFrom(this.#byUser, s.sub, sessionId);
    if (s.sid) removeFrom(this.#byIdpSession, idpKey(s.issuer, s.sid), sessionId);
  }

  #sweep(now: number): void {
    for (const [id, s] of this.#sessions) if (s.expiresAt <= now) this.#remove(id);
    for (const [k, { until }] of this.#consumed) if (until <= now) this.#consumed.delete(k);
    for (const [id, e] of this.#ended) if (e.expiresAt <= now) this.#ended.delete(id);
    for (const [k, until] of this.#idpEnded) if (until <= now) this.#idpEnded.delete(k);
  }
}

function idpKey(issuer: string, sid: string): string {
  return `${issuer}\u0000${sid}`;
}

function addTo(index: Map<string, Set<string>>, key: string, id: string): void {
  const set = index.get(key);
  if (set) set.add(id);
  else index.set(key, new Set([id]));
}

function removeFrom(index: Map<string, Set<string>>, key: string, id: string): void {
  const set = index.get(key);
  if (!set) return;
  set.delete(id);
  if (set.size === 0) index.delete(key);
}

/** Creates the in-memory projection used when the config has no `cluster:` block. */
export function createMemoryStore(): SessionStore {
  return new MemorySessionStore();
}
