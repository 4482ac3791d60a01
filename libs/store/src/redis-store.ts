// Cluster session projection in Redis: atomic Lua applies, one-round-trip reads, pub/sub for waiters.
import type { RedisConfig } from '@portcullis/config';
import { SeqWaiters, type SequencedEvent } from '@portcullis/events';
import { Cluster } from 'ioredis';
import { StoreError, StoreErrorCode } from './errors.ts';
import { REDIS_COMMAND_TIMEOUT_MS, createRedisClient, describeTarget, duplicateClient, type RedisClient } from './redis-client.ts';
import { createRedisKeys, type RedisKeys } from './redis-keys.ts';
import { encodeRecordParts, encodeRefreshedTokens, parseRecord } from './redis-record.ts';
import {
  APPLY_EVENT_LUA,
  DUE_FOR_REFRESH_LUA,
  END_REBUILD_LUA,
  IDLE_SESSIONS_LUA,
  LAST_ACTIVITY_LUA,
  READ_SESSION_LUA,
  PROJECTION_LOST_REPLY,
  REBUILD_LOST_REPLY,
  REBUILDING_REPLY,
  RECORD_ACTIVITY_LUA,
  REFRESH_REBUILD_LUA,
} from './redis-scripts.ts';
import type { SessionActivity, SessionRecord, SessionStore } from './types.ts';

/** How long the first connection may take before the start fails. */
const DEFAULT_START_TIMEOUT_MS = 10_000;
const PING_TIMEOUT_MS = 1_000;
const QUIT_TIMEOUT_MS = 2_000;
/** ioredis's error for a command unanswered within its commandTimeout. */
const COMMAND_TIMED_OUT = 'Command timed out';
const FORCED_RECONNECT_EVERY_MS = 10_000;
/** Keys per MGET / UNLINK call when walking many keys. */
const BATCH = 500;
/** Prefix of a settled single-use key's value (its outcome follows); a consumed, unsettled key holds '1'. */
const ONCE_OUTCOME_MARK = '=';
/** Activity entries per script call: a report of hundreds is one call; a huge one does not block Redis in one go. */
const ACTIVITY_BATCH = 1000;

/** Options of {@link createRedisStore}. */
export interface RedisStoreOptions {
  redis: RedisConfig;
  /** Connection events ("ready", "reconnecting", "error: ..."), for the caller to log. */
  onStatus?: (s: string) => void;
  /** Bound of the first connection; default 10 s. */
  startTimeoutMs?: number;
}

/**
 * The Redis store: the SessionStore port plus operations for the admin CLI and health checks.
 *
 * Rebuild protocol (`portcullis sessions rebuild`): `beginRebuild` sets a marker with a TTL; while it
 * exists, `apply`, `getLiveSession` and `listLiveSessions` throw `PORTCULLIS_STORE_REBUILDING` (a
 * read never answers "no such session" for a session it cannot judge: gateways fail closed with a
 * 503 and keep the cookie). The rebuild then `dropProjection`s,
 * replays the log with `applyAs(token, …)`, keeps the marker alive with `refreshRebuild` and
 * finishes with `endRebuild`. A crashed rebuild frees the projection when the TTL runs out. The
 * upkeep reads trust nothing either, without throwing: `dueForRefresh` and `idleSessions` answer []
 * (and prune nothing), `lastActivity` null. The refresh schedule is rebuilt by the replay; the activity
 * indexes are not in the log, so `dropProjection` keeps them.
 */
export type RedisStore = SessionStore & {
  /**
   * Deletes the whole projection (sessions, indexes, watermarks, refresh schedule, applied seq) — for
   * `sessions rebuild`. Keeps single-use keys, the activity indexes and the rebuild marker (not derived from the log).
   */
  dropProjection(): Promise<void>;
  /** True when Redis answers PING within 1 s. */
  ping(): Promise<boolean>;
  /** Starts a rebuild held by `token` for `ttlMs`; throws `PORTCULLIS_STORE_REBUILDING` when another rebuild holds the marker. */
  beginRebuild(token: string, ttlMs: number): Promise<void>;
  /** Extends the marker to `ttlMs` from now; throws `PORTCULLIS_STORE_REBUILD_LOST` when `token` no longer holds it. */
  refreshRebuild(token: string, ttlMs: number): Promise<void>;
  /** `apply` for the rebuild holding `token` (throws `PORTCULLIS_STORE_REBUILD_LOST` otherwise). */
  applyAs(token: string, e: SequencedEvent): Promise<void>;
  /** Removes the marker if `token` holds it; true when it did (false: it had expired or belongs to another rebuild). */
  endRebuild(token: string): Promise<boolean>;
  /** True while a rebuild marker exists. */
  rebuildInProgress(): Promise<boolean>;
  /** How many users have a sign-out watermark (for the rebuild's summary). */
  countSignOutWatermarks(): Promise<number>;
  /**
   * Null when Redis will never evict a key of the projection (`maxmemory-policy noeviction`, or no
   * `maxmemory`); otherwise what is wrong and what to set, for the caller to log at start. Read with
   * `INFO memory`, which managed services that disable CONFIG still answer; when even that is refused,
   * the answer says the policy could not be checked.
   */
  evictionHazard(): Promise<string | null>;
};

/** The scripts, as commands ioredis adds with `defineCommand` (EVALSHA, falling back to EVAL once). */
interface ProjectionCommands {
  portcullisApply(appliedKey: string, rebuildingKey: string, ...args: string[]): Promise<number>;
  portcullisReadSession(sessionKey: string, rebuildingKey: string, appliedKey: string, base: string, seenApplied: string): Promise<[string, string] | null>;
  portcullisRefreshRebuild(rebuildingKey: string, token: string, ttlMs: string): Promise<number>;
  portcullisEndRebuild(rebuildingKey: string, appliedKey: string, token: string): Promise<number>;
  portcullisDueForRefresh(refreshDueKey: string, rebuildingKey: string, base: string, now: string, limit: string): Promise<string[]>;
  portcullisIdleSessions(
    activityKey: string,
    rebuildingKey: string,
    base: string,
    before: string,
    limit: string,
    now: string,
    provider: string,
  ): Promise<string[]>;
  portcullisLastActivity(sessionKey: string, rebuildingKey: string, base: string): Promise<[string, string, string] | null>;
  portcullisRecordActivity(rebuildingKey: string, base: string, ...entries: string[]): Promise<number>;
}
type ProjectionClient = RedisClient & ProjectionCommands;

class RedisSessionStore implements RedisStore {
  readonly #client: ProjectionClient;
  readonly #cfg: RedisConfig;
  readonly #keys: RedisKeys;
  readonly #waiters = new SeqWaiters();
  #subscriber: Promise<RedisClient> | undefined;
  #closed = false;
  #lastForcedReconnect = Number.NEGATIVE_INFINITY;
  /**
   * The highest applied sequence this process has seen in Redis: finding none there afterwards means
   * Redis lost the projection (see {@link PROJECTION_LOST_REPLY}), which the scripts then refuse to trust.
   */
  #seenApplied = 0;

  constructor(client: RedisClient, cfg: RedisConfig) {
    client.defineCommand('portcullisApply', { numberOfKeys: 2, lua: APPLY_EVENT_LUA });
    client.defineCommand('portcullisReadSession', { numberOfKeys: 3, lua: READ_SESSION_LUA });
    client.defineCommand('portcullisRefreshRebuild', { numberOfKeys: 1, lua: REFRESH_REBUILD_LUA });
    client.defineCommand('portcullisEndRebuild', { numberOfKeys: 2, lua: END_REBUILD_LUA });
    client.defineCommand('portcullisDueForRefresh', { numberOfKeys: 2, lua: DUE_FOR_REFRESH_LUA });
    client.defineCommand('portcullisIdleSessions', { numberOfKeys: 2, lua: IDLE_SESSIONS_LUA });
    client.defineCommand('portcullisLastActivity', { numberOfKeys: 2, lua: LAST_ACTIVITY_LUA });
    client.defineCommand('portcullisRecordActivity', { numberOfKeys: 1, lua: RECORD_ACTIVITY_LUA });
    this.#client = client as ProjectionClient;
    this.#cfg = cfg;
    this.#keys = createRedisKeys(cfg.key_prefix);
  }

  async appliedSeq(): Promise<number> {
    const applied = await this.#run('GET applied', async () => Number((await this.#client.get(this.#keys.applied)) ?? 0));
    this.#seenApplied = Math.max(this.#seenApplied, applied);
    return applied;
  }

  async apply(e: SequencedEvent): Promise<void> {
    return this.#applyEvent(e, '');
  }

  async applyAs(token: string, e: SequencedEvent): Promise<void> {
    // '' is the script's "normal apply": a rebuild token must be something else.
    if (token === '') throw new TypeError('applyAs: the rebuild token must not be empty');
    return this.#applyEvent(e, token);
  }

  async #applyEvent({ seq, event }: SequencedEvent, token: string): Promise<void> {
    const head = [String(seq), this.#keys.base, this.#keys.appliedChannel, event.type, token, String(this.#seenApplied)];
    let rest: string[];
    switch (event.type) {
      case 'SessionStarted': {
        const d = event.data;
        const { identity, tokens } = encodeRecordParts({ ...d, seq });
        rest = [
          d.sessionId,
          d.sub,
          d.issuer,
          d.sid ?? '',
          String(d.expiresAt),
          identity,
          tokens,
          d.provider,
          String(d.createdAt),
          d.refreshAt != null ? String(d.refreshAt) : '',
        ];
        break;
      }
      case 'SessionRefreshed': {
        const d = event.data;
        rest = [d.sessionId, encodeRefreshedTokens(d), d.refreshAt !== null ? String(d.refreshAt) : ''];
        break;
      }
      case 'SessionEnded':
        rest = [event.data.sessionId];
        break;
      case 'UserSignedOut':
        rest = [event.data.sub];
        break;
      case 'IdpSessionEnded':
        rest = [event.data.issuer, event.data.sid ?? '', event.data.sub ?? ''];
        break;
    }
    await this.#run(`apply ${event.type} #${seq}`, () => this.#client.portcullisApply(this.#keys.applied, this.#keys.rebuilding, ...head, ...rest));
    this.#seenApplied = Math.max(this.#seenApplied, seq);
  }

  async getLiveSession(sessionId: string, now = Date.now()): Promise<SessionRecord | null> {
    const found = await this.#run('read session', () =>
      this.#client.portcullisReadSession(this.#keys.session(sessionId), this.#keys.rebuilding, this.#keys.applied, this.#keys.base, String(this.#seenApplied)),
    );
    if (!found) return null;
    return liveOrNull(parseRecord(found[0], sessionId), Number(found[1]), now);
  }

  async listLiveSessions(filter: { sub?: string } = {}, now = Date.now()): Promise<SessionRecord[]> {
    // A listing is several commands: checked before and after, so a rebuild that starts midway is not missed.
    await this.#refuseWhileRebuilding('list sessions');
    const sessionKeys =
      filter.sub !== undefined
        ? (await this.#run('SMEMBERS', () => this.#client.smembers(this.#keys.userSessions(filter.sub!)))).map((id) => this.#keys.session(id))
        : await this.#scan(this.#keys.sessionPattern);
    const records: SessionRecord[] = [];
    for (let i = 0; i < sessionKeys.length; i += BATCH) {
      const raws = await this.#run('MGET sessions', () => this.#client.mget(sessionKeys.slice(i, i + BATCH)));
      raws.forEach((raw, j) => {
        if (raw !== null) records.push(parseRecord(raw, sessionKeys[i + j]!));
      });
    }
    const subs = [...new Set(records.map((r) => r.sub))];
    const watermarks = new Map<string, number>();
    for (let i = 0; i < subs.length; i += BATCH) {
      const chunk = subs.slice(i, i + BATCH);
      const values = await this.#run('MGET watermarks', () => this.#client.mget(chunk.map((s) => this.#keys.signOut(s))));
      chunk.forEach((s, j) => {
        watermarks.set(s, Number(values[j] ?? 0));
      });
    }
    await this.#refuseWhileRebuilding('list sessions');
    return records
      .filter((r) => liveOrNull(r, watermarks.get(r.sub) ?? 0, now) !== null)
      .sort((a, b) => a.seq - b.seq);
  }

  async forEachLiveSessionPage(onPage: (sessions: SessionRecord[]) => Promise<void>, pageSize = BATCH): Promise<void> {
    const nodes = this.#client instanceof Cluster ? this.#client.nodes('master') : [this.#client];
    for (const node of nodes) {
      let cursor = '0';
      do {
        await this.#refuseWhileRebuilding('list sessions');
        const [next, keys] = await this.#run('SCAN', () => node.scan(cursor, 'MATCH', this.#keys.sessionPattern, 'COUNT', pageSize));
        cursor = next;
        if (keys.length === 0) continue;
        const raws = await this.#run('MGET sessions', () => this.#client.mget(keys));
        const records: SessionRecord[] = [];
        raws.forEach((raw, j) => {
          if (raw !== null) records.push(parseRecord(raw, keys[j]!));
        });
        const subs = [...new Set(records.map((r) => r.sub))];
        const values = subs.length === 0 ? [] : await this.#run('MGET watermarks', () => this.#client.mget(subs.map((x) => this.#keys.signOut(x))));
        const watermarks = new Map(subs.map((x, j) => [x, Number(values[j] ?? 0)]));
        const now = Date.now();
        const live = records.filter((r) => liveOrNull(r, watermarks.get(r.sub) ?? 0, now) !== null);
        // SCAN may return a key twice across pages; a caller ending sessions tolerates that (ending is idempotent).
        if (live.length > 0) await onPage(live);
      } while (cursor !== '0');
    }
  }

  async waitForApplied(seq: number, timeoutMs: number): Promise<boolean> {
    if (this.#closed) return false;
    await this.#ensureSubscriber();
    // The waiter is registered before the current value is read, so an apply published in between
    // is not missed: either the read sees it or the message resolves the waiter. A message lost
    // across a reconnect must not turn an applied seq into a false: on timeout, read once more.
    const result = this.#waiters.wait(seq, timeoutMs, async () => (await this.appliedSeq()) >= seq);
    this.#settleWaiters(await this.appliedSeq());
    return result;
  }

  async consumeOnce(key: string, ttlMs: number, outcome?: string): Promise<boolean> {
    const value = outcome === undefined ? '1' : `${ONCE_OUTCOME_MARK}${outcome}`;
    const ok = await this.#run('SET NX', () => this.#client.set(this.#keys.once(key), value, 'PX', toTtl(ttlMs), 'NX'));
    return ok === 'OK';
  }

  async releaseOnce(key: string): Promise<void> {
    await this.#run('DEL', () => this.#client.del(this.#keys.once(key)));
  }

  async idpSessionEnded(issuer: string, sid: string): Promise<boolean> {
    return (await this.#run('EXISTS idp-ended', () => this.#client.exists(this.#keys.idpEnded(issuer, sid)))) === 1;
  }

  async settleOnce(key: string, outcome: string): Promise<void> {
    // XX: only a key still consumed; KEEPTTL: the outcome lives exactly as long as the consumption.
    await this.#run('SET XX', () => this.#client.set(this.#keys.once(key), `${ONCE_OUTCOME_MARK}${outcome}`, 'KEEPTTL', 'XX'));
  }

  async onceOutcome(key: string): Promise<string | null> {
    const value = await this.#run('GET', () => this.#client.get(this.#keys.once(key)));
    // A bare consumption holds '1' (consumeOnce); an outcome is marked so that no outcome can pass for one.
    return value?.startsWith(ONCE_OUTCOME_MARK) ? value.slice(ONCE_OUTCOME_MARK.length) : null;
  }

  async dueForRefresh(now: number, limit: number): Promise<string[]> {
    if (limit < 1) return [];
    return this.#run('due for refresh', () =>
      this.#client.portcullisDueForRefresh(this.#keys.refreshDue, this.#keys.rebuilding, this.#keys.base, String(now), String(Math.floor(limit))),
    );
  }

  async postponeRefresh(sessionId: string, at: number): Promise<void> {
    if (!Number.isFinite(at)) throw new TypeError(`postponeRefresh: 'at' of session ${sessionId} must be a unix ms number, got ${at}`);
    // XX: only a session still on the schedule moves; an ended one (removed from it) is never put back.
    await this.#run('postpone refresh', () => this.#client.zadd(this.#keys.refreshDue, 'XX', String(at), sessionId));
  }

  async recordActivity(entries: readonly SessionActivity[]): Promise<void> {
    for (const e of entries) {
      if (!Number.isFinite(e.at)) throw new TypeError(`recordActivity: 'at' of session ${e.sessionId} must be a unix ms number, got ${e.at}`);
    }
    for (let i = 0; i < entries.length; i += ACTIVITY_BATCH) {
      const args = entries.slice(i, i + ACTIVITY_BATCH).flatMap((e) => [e.sessionId, e.provider, String(e.at)]);
      await this.#run('record activity', () => this.#client.portcullisRecordActivity(this.#keys.rebuilding, this.#keys.base, ...args));
    }
  }

  async lastActivity(sessionId: string): Promise<number | null> {
    const found = await this.#run('read activity', () =>
      this.#client.portcullisLastActivity(this.#keys.session(sessionId), this.#keys.rebuilding, this.#keys.base),
    );
    if (!found) return null;
    const [identity, watermark, score] = found;
    const record = liveOrNull(parseRecord(identity, sessionId), Number(watermark), Date.now());
    if (!record) return null;
    // A session recorded before the activity index existed has no entry: its start is its first use.
    return score !== '' ? Number(score) : record.createdAt;
  }

  async idleSessions(provider: string, before: number, limit: number): Promise<string[]> {
    if (limit < 1) return [];
    return this.#run('idle sessions', () =>
      this.#client.portcullisIdleSessions(
        this.#keys.activity(provider),
        this.#keys.rebuilding,
        this.#keys.base,
        String(before),
        String(Math.floor(limit)),
        String(Date.now()),
        provider,
      ),
    );
  }

  async dropProjection(): Promise<void> {
    // Dropped on purpose by this process: an empty projection is expected from here on.
    this.#seenApplied = 0;
    const keys = (await this.#scan(this.#keys.everyKeyPattern)).filter((k) => !this.#keys.isKeptOnDrop(k));
    for (let i = 0; i < keys.length; i += BATCH) {
      const chunk = keys.slice(i, i + BATCH);
      await this.#run('UNLINK', () => this.#client.unlink(...chunk));
    }
  }

  async beginRebuild(token: string, ttlMs: number): Promise<void> {
    if (token === '') throw new TypeError('beginRebuild: the rebuild token must not be empty');
    const ok = await this.#run('SET NX rebuilding', () => this.#client.set(this.#keys.rebuilding, token, 'PX', toTtl(ttlMs), 'NX'));
    if (ok === 'OK') return;
    const left = await this.#run('PTTL rebuilding', () => this.#client.pttl(this.#keys.rebuilding));
    throw new StoreError(
      StoreErrorCode.Rebuilding,
      `another rebuild of the projection is in progress (its marker ${this.#keys.rebuilding} expires in ${Math.max(0, left)} ms unless it is refreshed)`,
    );
  }

  async refreshRebuild(token: string, ttlMs: number): Promise<void> {
    const held = await this.#run('refresh rebuilding', () => this.#client.portcullisRefreshRebuild(this.#keys.rebuilding, token, String(toTtl(ttlMs))));
    if (held !== 1) throw new StoreError(StoreErrorCode.RebuildLost, 'the rebuild marker expired or was taken over: this rebuild no longer holds the projection');
  }

  async endRebuild(token: string): Promise<boolean> {
    return (await this.#run('end rebuilding', () => this.#client.portcullisEndRebuild(this.#keys.rebuilding, this.#keys.applied, token))) === 1;
  }

  async rebuildInProgress(): Promise<boolean> {
    return (await this.#run('EXISTS rebuilding', () => this.#client.exists(this.#keys.rebuilding))) === 1;
  }

  async countSignOutWatermarks(): Promise<number> {
    return (await this.#scan(this.#keys.signOutPattern)).length;
  }

  async evictionHazard(): Promise<string | null> {
    const nodes = this.#client instanceof Cluster ? this.#client.nodes('master') : [this.#client];
    for (const node of nodes) {
      let info: string;
      try {
        info = await withTimeout(node.info('memory'), PING_TIMEOUT_MS * 2);
      } catch (err) {
        return (
          `${describeTarget(this.#cfg)}: could not read its maxmemory-policy (INFO memory: ${messageOf(err)}); make sure it is noeviction: ` +
          'a Redis that evicts keys when full can drop a sign-out watermark or an ended-session tombstone and bring signed-out sessions back'
        );
      }
      const field = (name: string): string | undefined => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
      const policy = field('maxmemory_policy');
      const maxmemory = Number(field('maxmemory') ?? '0');
      // Without maxmemory a 64-bit Redis never evicts, whatever the policy.
      if (policy === undefined || policy === 'noeviction' || !(maxmemory > 0)) continue;
      return (
        `${describeTarget(this.#cfg)} has maxmemory-policy ${policy} with maxmemory ${maxmemory} bytes: when it is full it evicts keys, and ` +
        'evicting a sign-out watermark or an ended-session tombstone brings signed-out sessions back. Set maxmemory-policy noeviction ' +
        '(a full Redis then refuses writes instead, which the session service retries) and size maxmemory for your sessions (~2.4 KB each)'
      );
    }
    return null;
  }

  async ping(): Promise<boolean> {
    try {
      return (await withTimeout(this.#client.ping(), PING_TIMEOUT_MS)) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiters.cancelAll();
    const subscriber = await this.#subscriber?.catch(() => undefined);
    await Promise.all([quit(this.#client), subscriber ? quit(subscriber) : undefined]);
  }

  /** One shared subscriber connection, opened on first use. */
  #ensureSubscriber(): Promise<RedisClient> {
    this.#subscriber ??= (async () => {
      const sub = duplicateClient(this.#client, this.#cfg);
      sub.on('message', (channel: string, message: string) => {
        if (channel === this.#keys.appliedChannel) this.#settleWaiters(Number(message));
      });
      // Messages published while the subscriber was reconnecting are lost: re-read on every ready.
      sub.on('ready', () => {
        if (this.#waiters.size > 0) this.appliedSeq().then((v) => this.#settleWaiters(v), () => {});
      });
      sub.on('error', () => {});
      try {
        await this.#run('SUBSCRIBE', () => sub.subscribe(this.#keys.appliedChannel));
      } catch (err) {
        sub.disconnect();
        this.#subscriber = undefined;
        throw err;
      }
      return sub;
    })();
    return this.#subscriber;
  }

  #settleWaiters(applied: number): void {
    this.#waiters.settle(applied);
  }

  /** Every key matching `pattern` (SCAN COUNT 1000 on each master: in a cluster the keys sit on one of them). */
  async #scan(pattern: string): Promise<string[]> {
    const nodes = this.#client instanceof Cluster ? this.#client.nodes('master') : [this.#client];
    const found = new Set<string>();
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await this.#run('SCAN', () => node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000));
        for (const k of keys) found.add(k);
        cursor = next;
      } while (cursor !== '0');
    }
    return [...found];
  }

  async #refuseWhileRebuilding(what: string): Promise<void> {
    if (await this.rebuildInProgress()) {
      throw new StoreError(StoreErrorCode.Rebuilding, `${what}: the projection is being rebuilt — try again when the rebuild has finished`);
    }
  }

  /** The one place Redis failures are translated: the original stays as `cause`, nothing is swallowed. */
  async #run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StoreError) throw err;
      // The apply script's own refusals arrive as error replies whose first word is their code.
      const message = messageOf(err);
      if (message.startsWith(REBUILDING_REPLY)) {
        throw new StoreError(StoreErrorCode.Rebuilding, `${what} refused: the projection is being rebuilt`, { cause: err });
      }
      if (message.startsWith(PROJECTION_LOST_REPLY)) {
        throw new StoreError(
          StoreErrorCode.ProjectionLost,
          `${describeTarget(this.#cfg)}: ${what} refused: Redis lost the session projection (restarted without persistence, flushed, or an ` +
            'empty replica promoted): it must be rebuilt from the event log, which the session service does on its own ' +
            '(`portcullis sessions rebuild` does it by hand). Run Redis with persistence (appendonly yes) to avoid this',
          { cause: err },
        );
      }
      if (message.startsWith(REBUILD_LOST_REPLY)) {
        throw new StoreError(StoreErrorCode.RebuildLost, `${what} refused: this rebuild no longer holds the rebuild marker (it expired or was taken over)`, {
          cause: err,
        });
      }
      if (message === COMMAND_TIMED_OUT) {
        this.#reconnectSilentConnection();
        throw new StoreError(
          StoreErrorCode.Unavailable,
          `${describeTarget(this.#cfg)}: ${what} got no answer within ${REDIS_COMMAND_TIMEOUT_MS / 1000} s (the connection is open but Redis is not answering)`,
          { cause: err },
        );
      }
      throw new StoreError(StoreErrorCode.Unavailable, `${describeTarget(this.#cfg)}: ${what} failed: ${message}`, { cause: err });
    }
  }

  /**
   * A connection that stays open but unanswered may lead to a server that is gone for good (a host
   * lost without a reset, a Sentinel master replaced meanwhile): TCP would keep it for minutes.
   * Reconnect (at most every 10 s), which also asks Sentinel or the Cluster where to go now.
   */
  #reconnectSilentConnection(): void {
    const now = performance.now();
    if (this.#closed || this.#client.status !== 'ready' || now - this.#lastForcedReconnect < FORCED_RECONNECT_EVERY_MS) return;
    this.#lastForcedReconnect = now;
    this.#client.disconnect(true);
  }
}

/**
 * Connects to Redis (standalone, Sentinel or Cluster, per config) and returns the store. Rejects with
 * a {@link StoreError} naming the target and what to check when Redis does not answer in time.
 */
export async function createRedisStore(opts: RedisStoreOptions): Promise<RedisStore> {
  const client = createRedisClient(opts.redis);
  const onStatus = opts.onStatus ?? (() => {});
  for (const event of ['connect', 'ready', 'close', 'reconnecting', 'end'] as const) client.on(event, () => onStatus(event));
  // ioredis emits errors only to listeners; without one a failed reconnect would crash the process.
  client.on('error', (err: Error) => onStatus(`error: ${err.message}`));
  try {
    await withTimeout(client.connect(), opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  } catch (err) {
    client.disconnect();
    throw new StoreError(
      StoreErrorCode.ConnectFailed,
      `cannot connect to ${describeTarget(opts.redis)} (${messageOf(err)}): check that Redis runs there and that ` +
        'cluster.redis (url, password, tls, sentinels/sentinel_name or cluster_nodes) matches it',
      { cause: err },
    );
  }
  return new RedisSessionStore(client, opts.redis);
}

/** A positive whole number of milliseconds for PX / PEXPIRE. */
function toTtl(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}

function liveOrNull(r: SessionRecord, watermark: number, now: number): SessionRecord | null {
  if (r.expiresAt <= now) return null;
  if (r.seq <= watermark) return null;
  return r;
}

async function quit(client: RedisClient): Promise<void> {
  try {
    await withTimeout(client.quit(), QUIT_TIMEOUT_MS);
  } catch {
    // Redis is unreachable: there is nothing to say goodbye to, just drop the socket.
    client.disconnect();
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
