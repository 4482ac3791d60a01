// The gateway's local session cache, kept correct by following the event log's revocations in order.
import type { EventLog, Subscription } from '@portcullis/bus';
import { SeqWaiters, type SequencedEvent, type SessionRefreshedData } from '@portcullis/events';
import type { SessionReader, SessionRecord } from '@portcullis/store';
import { tracingEnabled, withSpan } from '@portcullis/telemetry';

/** Options of {@link CachedSessionReader}. */
export interface SessionCacheOptions {
  log: EventLog;
  /** The shared projection (Redis): read on a miss, and for every request while the cache is distrusted. */
  store: SessionReader;
  /** Most sessions held; the least recently inserted go first. */
  maxEntries?: number;
  /** How long revocation facts are remembered (ms): at least the longest session lifetime. */
  revocationMemoryMs: number;
  /** Called when the cache starts or stops being trusted (for logs and metrics). */
  onTrustChange?: (trusted: boolean, reason: string) => void;
  /** Called per lookup: answered from memory, read from the store (then cached), or store only (distrusted). */
  onLookup?: (result: 'hit' | 'miss' | 'bypass') => void;
}

interface Revocations {
  /** sub → seq of the last sign-out: sessions of that sub with a smaller seq are dead. */
  bySub: Map<string, number>;
  /** issuer + sub → seq (back-channel logout by sub). */
  byIssuerSub: Map<string, number>;
  /** issuer + IdP sid → seq (back-channel logout by sid): every session of it is dead, even one started later (a racing login). */
  byIdpSession: Map<string, number>;
  /** Ended session ids → seq. */
  bySession: Map<string, number>;
  /** Insertion times, to forget facts older than any session. */
  added: Array<{ at: number; map: Map<string, number>; key: string }>;
  /** Per map, key → when its fact was last remembered: a fact is forgotten once its latest record is. */
  lastAt: Map<Map<string, number>, Map<string, number>>;
}

const key2 = (a: string, b: string) => `${a}\u0000${b}`;
const RESYNC_RETRY_MS = 250;
/** How long a read waits for a cache that just started to read the log's backlog (the store lagging behind it). */
const START_CATCH_UP_WAIT_MS = 2_000;
/**
 * How long a refresh seen in the log is remembered for sessions read on a miss: a lagging store may
 * still hold the record from before it, which must not be cached as if it were current.
 */
const REFRESH_MEMORY_MS = 60_000;
const REFRESH_MEMORY_MAX = 100_000;

/**
 * A SessionReader for gateways: hits are answered from memory; misses (and every request while the
 * cache is not trusted) read the store. The cache is trusted only while the log subscription is
 * live and caught up; a revocation seen in the log removes the affected sessions and is remembered,
 * so a session fetched from a lagging store can never be resurrected.
 */
export class CachedSessionReader implements SessionReader {
  readonly #opts: SessionCacheOptions;
  readonly #max: number;
  readonly #sessions = new Map<string, SessionRecord>();
  readonly #bySub = new Map<string, Set<string>>();
  readonly #rev: Revocations = { bySub: new Map(), byIssuerSub: new Map(), byIdpSession: new Map(), bySession: new Map(), added: [], lastAt: new Map() };
  /** Session id → seq and local time of its latest SessionRefreshed (insertion order = time order). */
  readonly #refreshes = new Map<string, { seq: number; at: number }>();
  #applied = 0;
  /**
   * The log position this cache started following after: revocations up to it are known only to the
   * store, so a store read is cached only once the store has applied it (a lagging store may still
   * list a session signed out just before this gateway started).
   */
  #joinedAt = 0;
  #storeReachedJoinSeen = false;
  /** The log's end when this cache started: until it is applied here, a store read may lack a revocation only the log holds. */
  #startEnd = 0;
  /** The highest last sequence of the log seen (at start or asked since): the log holds every sequence up to it. */
  #logEndSeen = 0;
  /** The log's last sequence being asked for a caller of {@link logHolds}; shared by those that come meanwhile. */
  #logEndAsk: Promise<number> | undefined;
  #trusted = false;
  /** The cache is distrusted until the subscription has applied this sequence. */
  #catchUpTo = 0;
  #connected = true;
  /**
   * Cluster: the cache is vouched for only until this time (renewed by bus round trips), on the
   * monotonic clock (performance.now()): a wall clock stepped back must not stretch the lease.
   */
  #leaseUntil = Number.POSITIVE_INFINITY;
  #sub: Subscription | undefined;
  /** Generation of the latest resync, so an older one that finishes late does not vouch for the cache. */
  #resyncs = 0;
  /** Highest sequence a missed barrier demanded; a resync never settles for less. */
  #floor = 0;
  readonly #waiters = new SeqWaiters();

  constructor(opts: SessionCacheOptions) {
    this.#opts = opts;
    this.#max = opts.maxEntries ?? 100_000;
  }

  /**
   * Follows the log from where the store has applied it (its current end when the store is up to
   * date or cannot say); trusted once caught up with the end. A store lagging behind the log (its
   * session services down or restarting) does not know the revocations in between, and a cache
   * following only from the end would not either: a session signed out there would read as live.
   */
  async start(): Promise<void> {
    const last = await this.#opts.log.lastSeq();
    let storeAt = last;
    try {
      storeAt = Math.min(last, await this.#opts.store.appliedSeq());
    } catch {
      // Unknown: from the end; reads then go to the store, whose own error stands while it is down.
    }
    const from = storeAt + 1;
    this.#applied = storeAt;
    this.#joinedAt = storeAt;
    this.#catchUpTo = last;
    this.#startEnd = last;
    this.#logEndSeen = last;
    this.#sub = this.#opts.log.subscribe(
      from,
      (e) =>
        tracingEnabled()
          ? withSpan('gateway.apply_event', { attributes: { 'portcullis.event.type': e.event.type, 'portcullis.seq': e.seq } }, () => this.#apply(e))
          : this.#apply(e),
      (err) => this.#distrust(`log subscription failed: ${String(err)}`),
    );
    if (this.#applied >= this.#catchUpTo) this.#setTrusted(this.#connected, 'following the log');
  }

  async stop(): Promise<void> {
    await this.#sub?.close();
    this.#sub = undefined;
    this.#waiters.cancelAll();
  }

  /** Log position this gateway has applied. */
  get localApplied(): number {
    return this.#applied;
  }

  /** True while hits may be answered from memory. */
  get trusted(): boolean {
    return this.#trusted && performance.now() < this.#leaseUntil;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** The bus connection went down or came back. Down → distrust; back → distrust until caught up with the log. */
  async setConnected(up: boolean): Promise<void> {
    this.#connected = up;
    if (!up) {
      this.#distrust('bus disconnected');
      return;
    }
    await this.#resync('bus reconnected');
  }

  /**
   * Whatever was published while we could not hear it must be applied before the cache is trusted
   * again: distrust until the subscription reaches the log's current end (retrying the read of it).
   */
  async #resync(reason: string): Promise<void> {
    const attempt = ++this.#resyncs;
    this.#catchUpTo = Number.POSITIVE_INFINITY;
    this.#distrust(reason);
    while (attempt === this.#resyncs && this.#sub) {
      try {
        const last = await this.#opts.log.lastSeq();
        if (attempt !== this.#resyncs) return;
        this.#catchUpTo = Math.max(last, this.#floor);
        this.#maybeTrust();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, RESYNC_RETRY_MS));
      }
    }
  }

  /**
   * Extends the lease to `untilMs` on the monotonic clock (performance.now()): the cache is used only
   * while the bus answered a round trip recently, so a gateway cut off without noticing falls back to
   * reading the store within the lease.
   */
  renewLease(untilMs: number): void {
    const lapsed = performance.now() > this.#leaseUntil;
    this.#leaseUntil = untilMs;
    // A lapse means we may have missed messages without any disconnect being reported: resync.
    if (lapsed) void this.#resync('lease lapsed');
  }

  /** Stop trusting the cache until the log is applied up to `seq` (a barrier this gateway could not meet). */
  distrustUntil(seq: number, reason: string): void {
    this.#floor = Math.max(this.#floor, seq);
    this.#catchUpTo = Math.max(this.#catchUpTo, seq);
    if (this.#applied < seq) this.#distrust(reason);
  }

  /** Resolves true once this gateway applied `seq` from the log (false on timeout). */
  waitLocalApplied(seq: number, timeoutMs: number): Promise<boolean> {
    if (this.#applied >= seq) return Promise.resolve(true);
    return this.#waiters.wait(seq, timeoutMs);
  }

  // ---- SessionReader -------------------------------------------------------------------------

  appliedSeq(): Promise<number> {
    return this.#opts.store.appliedSeq();
  }

  waitForApplied(seq: number, timeoutMs: number): Promise<boolean> {
    return this.#opts.store.waitForApplied(seq, timeoutMs);
  }

  /**
   * A fresh cookie's session, as soon as this gateway has read it from the log while trusted (a
   * SessionStarted applied then is pre-warmed): a store lagging behind the log then no longer turns
   * a fresh login into a stale cookie and a second login. Undefined when memory cannot tell.
   */
  async awaitKnownSession(sessionId: string, seq: number, timeoutMs: number): Promise<SessionRecord | undefined> {
    if (!(await this.waitLocalApplied(seq, timeoutMs))) return undefined;
    const hit = this.peekLiveSession(sessionId);
    return hit && hit.seq === seq ? hit : undefined;
  }

  /**
   * Whether the log holds `seq` (slow path only: a cookie the projection has not applied after the
   * read-your-writes wait). Known without asking when this cache applied it or saw the log reach it
   * (sequences only grow); otherwise the log is asked, once for every caller meanwhile. A shared
   * answer may have been asked before `seq` was appended, so a "no" is confirmed by an ask of its own:
   * "no" deletes the cookie.
   */
  async logHolds(seq: number): Promise<boolean> {
    if (Math.max(this.#applied, this.#logEndSeen) >= seq) return true;
    if (this.#logEndAsk === undefined) {
      const ask = this.#opts.log.lastSeq().finally(() => {
        if (this.#logEndAsk === ask) this.#logEndAsk = undefined;
      });
      this.#logEndAsk = ask;
    }
    let last = await this.#logEndAsk;
    if (last < seq) last = await this.#opts.log.lastSeq();
    this.#logEndSeen = Math.max(this.#logEndSeen, last);
    return last >= seq;
  }

  listLiveSessions(filter?: { sub?: string }, now?: number): Promise<SessionRecord[]> {
    return this.#opts.store.listLiveSessions(filter, now);
  }

  async getLiveSession(sessionId: string, now = Date.now()): Promise<SessionRecord | null> {
    const cached = this.peekLiveSession(sessionId, now);
    if (cached !== undefined) return cached;
    if (this.#applied < this.#startEnd && !(await this.waitLocalApplied(this.#startEnd, START_CATCH_UP_WAIT_MS))) {
      // Fail closed: the store lags behind the log, and this gateway has not read the gap yet.
      throw new Error(`the session cache is still reading the log up to #${this.#startEnd} (the store lags behind it): session not checked`);
    }
    const useCache = this.trusted;
    this.#opts.onLookup?.(useCache ? 'miss' : 'bypass');
    // Checked before the read: what the read returns then reflects at least that position.
    const cacheable = useCache && (await this.#storeReachedJoin());
    const s = await this.#opts.store.getLiveSession(sessionId, now);
    if (!s || this.#revoked(s)) return null;
    if (cacheable && (await this.#storeHasRefresh(sessionId))) this.#insert(s);
    return s;
  }

  /** Whether the store has applied the log up to where this cache joined it (remembered once it has). */
  async #storeReachedJoin(): Promise<boolean> {
    if (this.#storeReachedJoinSeen) return true;
    try {
      this.#storeReachedJoinSeen = (await this.#opts.store.appliedSeq()) >= this.#joinedAt;
    } catch {
      // Unknown: served from the store (its own error, if any, stands), not cached.
    }
    return this.#storeReachedJoinSeen;
  }

  /**
   * A cache hit, answered without waiting (HOT): the record if live, null if it expired or was
   * revoked (it is evicted); undefined on a miss or while the cache is not trusted (ask
   * {@link getLiveSession}, which reads the store).
   */
  peekLiveSession(sessionId: string, now = Date.now()): SessionRecord | null | undefined {
    if (!this.#trusted || performance.now() >= this.#leaseUntil) return undefined;
    const hit = this.#sessions.get(sessionId);
    if (!hit) return undefined;
    this.#opts.onLookup?.('hit');
    if (hit.expiresAt > now && !this.#revoked(hit)) return hit;
    this.#evict(sessionId);
    return null;
  }

  /**
   * False while the store has not applied this session's latest refresh seen in the log: its record
   * may predate the refresh, so it is served (the store is the read-through truth) but not cached.
   */
  async #storeHasRefresh(sessionId: string): Promise<boolean> {
    const refresh = this.#refreshes.get(sessionId);
    if (refresh === undefined) return true;
    if ((await this.#opts.store.appliedSeq()) < refresh.seq) return false;
    if (this.#refreshes.get(sessionId) === refresh) this.#refreshes.delete(sessionId);
    return true;
  }

  // ---- internals ----------------------------------------------------------------------------

  #apply({ seq, event }: SequencedEvent): void {
    switch (event.type) {
      case 'SessionStarted':
        // Pre-warm: the next request with this cookie is a hit on every gateway. Not a start under
        // an id this cache saw end (a copy appended again, which the stores refuse by its createdAt):
        // a miss asks the store. Cookies name the start's seq, so no copy could match one anyway.
        if (this.#trusted && !this.#rev.bySession.has(event.data.sessionId)) this.#insert({ ...event.data, seq });
        break;
      case 'SessionEnded':
        this.#remember(this.#rev.bySession, event.data.sessionId, seq);
        this.#evict(event.data.sessionId);
        break;
      case 'SessionRefreshed':
        this.#applyRefresh(event.data, seq);
        break;
      case 'UserSignedOut':
        this.#remember(this.#rev.bySub, event.data.sub, seq);
        for (const id of [...(this.#bySub.get(event.data.sub) ?? [])]) this.#evict(id);
        break;
      case 'IdpSessionEnded': {
        const { issuer, sid, sub } = event.data;
        if (sid) this.#remember(this.#rev.byIdpSession, key2(issuer, sid), seq);
        if (sub) this.#remember(this.#rev.byIssuerSub, key2(issuer, sub), seq);
        const ids = sub ? [...(this.#bySub.get(sub) ?? [])] : [...this.#sessions.keys()];
        for (const id of ids) {
          const s = this.#sessions.get(id);
          if (s && this.#revoked(s)) this.#evict(id);
        }
        break;
      }
    }
    this.#applied = seq;
    this.#waiters.settle(seq);
    this.#maybeTrust();
  }

  /**
   * A live cached session takes the refreshed claims and tokens as a NEW record (identity headers are
   * cached per record object, so they are recomputed); seq, createdAt and expiresAt stay. A session
   * not cached is not fetched, and a revoked or expired one is evicted, never revived.
   */
  #applyRefresh(d: SessionRefreshedData, seq: number): void {
    const now = Date.now();
    this.#rememberRefresh(d.sessionId, seq, now);
    const cached = this.#sessions.get(d.sessionId);
    if (!cached) return;
    if (cached.expiresAt <= now || this.#revoked(cached)) {
      this.#evict(d.sessionId);
      return;
    }
    const { claims, accessToken, refreshAt } = d;
    this.#sessions.set(d.sessionId, { ...cached, claims, accessToken, refreshAt });
  }

  #rememberRefresh(sessionId: string, seq: number, now: number): void {
    this.#refreshes.delete(sessionId);
    this.#refreshes.set(sessionId, { seq, at: now });
    const horizon = now - REFRESH_MEMORY_MS;
    for (const [id, r] of this.#refreshes) {
      if (r.at >= horizon && this.#refreshes.size <= REFRESH_MEMORY_MAX) break;
      this.#refreshes.delete(id);
    }
  }

  #revoked(s: SessionRecord): boolean {
    const r = this.#rev;
    // (HOT: every cache hit.) The issuer-keyed facts are looked up only when there are some, so a hit
    // does not build two key strings for maps that are usually empty.
    return (
      s.seq <= (r.bySub.get(s.sub) ?? 0) ||
      s.seq <= (r.bySession.get(s.sessionId) ?? 0) ||
      (r.byIssuerSub.size > 0 && s.seq <= (r.byIssuerSub.get(key2(s.issuer, s.sub)) ?? 0)) ||
      (s.sid !== null && r.byIdpSession.size > 0 && r.byIdpSession.has(key2(s.issuer, s.sid)))
    );
  }

  #remember(map: Map<string, number>, key: string, seq: number): void {
    map.set(key, Math.max(seq, map.get(key) ?? 0));
    const now = Date.now();
    this.#rev.added.push({ at: now, map, key });
    let times = this.#rev.lastAt.get(map);
    if (times === undefined) {
      times = new Map();
      this.#rev.lastAt.set(map, times);
    }
    times.set(key, now);
    // Forget facts older than any session could be (they can no longer matter).
    const horizon = now - this.#opts.revocationMemoryMs;
    let drop = 0;
    while (drop < this.#rev.added.length && this.#rev.added[drop]!.at < horizon) drop++;
    if (drop > 0) {
      // (Not a search of `added` per dropped fact: a burst of facts expiring among many newer ones
      // would then block the event loop for seconds.)
      for (const old of this.#rev.added.splice(0, drop)) {
        const times = this.#rev.lastAt.get(old.map);
        if ((times?.get(old.key) ?? 0) < horizon) {
          old.map.delete(old.key);
          times?.delete(old.key);
        }
      }
    }
  }

  #insert(record: SessionRecord): void {
    // The ID token (only a hint at sign-out, which the auth service reads from the store) and the
    // sealed refresh token are the auth service's business: not held in every gateway's memory.
    const s = record.refreshToken || record.idToken ? { ...record, idToken: null, refreshToken: null } : record;
    if (this.#sessions.has(s.sessionId)) this.#sessions.delete(s.sessionId);
    else if (this.#sessions.size >= this.#max) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest !== undefined) this.#evict(oldest);
    }
    this.#sessions.set(s.sessionId, s);
    const ids = this.#bySub.get(s.sub);
    if (ids) ids.add(s.sessionId);
    else this.#bySub.set(s.sub, new Set([s.sessionId]));
  }

  #evict(id: string): void {
    const s = this.#sessions.get(id);
    if (!s) return;
    this.#sessions.delete(id);
    const ids = this.#bySub.get(s.sub);
    ids?.delete(id);
    if (ids?.size === 0) this.#bySub.delete(s.sub);
  }

  #distrust(reason: string): void {
    if (this.#trusted) {
      // Drop what we hold: revocations may be missed from now on, so nothing cached is vouched for.
      this.#sessions.clear();
      this.#bySub.clear();
    }
    this.#setTrusted(false, reason);
  }

  #maybeTrust(): void {
    if (!this.#trusted && this.#connected && this.#sub && this.#applied >= this.#catchUpTo) this.#setTrusted(true, 'caught up with the log');
  }

  #setTrusted(trusted: boolean, reason: string): void {
    if (this.#trusted === trusted) return;
    this.#trusted = trusted;
    this.#opts.onTrustChange?.(trusted, reason);
  }
}
