// Every Redis key and channel of the session projection is built here, for TypeScript and for the Lua scripts.
//
// Layout: `<key_prefix>{s}:<kind>:<parts>`. All keys share the hash tag `{s}`, so in Redis Cluster
// they live in ONE hash slot: the apply script reads and writes many of them atomically, which
// Redis Cluster only allows for keys of the same slot. The price is that the projection lives on one
// shard; it is small (one record per live session), so that is the right trade.

/** The hash tag every key carries (see above). */
export const HASH_TAG = '{s}';

/** Key kinds: the segment after the hash tag. Distinct words so one kind's SCAN pattern matches no other. */
export const KeyKind = {
  /** JSON SessionRecord, PEXPIREAT = expiresAt. */
  session: 'session',
  /** SET of session ids of a user (sub). */
  userSessions: 'user',
  /** SET of session ids of an IdP session (issuer, sid). */
  idpSessions: 'idp',
  /** Tombstone of an IdP session (issuer, sid) a back-channel logout ended: a later start under it is dead. */
  idpEnded: 'idp-ended',
  /** Sequence of the user's last sign-out. */
  signOut: 'signout',
  /** Tombstone of an ended session, until the session would have expired anyway. */
  ended: 'ended',
  /** Sequence of the newest applied event. */
  applied: 'applied',
  /** ZSET of the refresh schedule: member session id, score its refreshAt (unix ms). Derived from the log. */
  refreshDue: 'refresh-due',
  /**
   * ZSET per provider: member session id, score its latest use (unix ms). Reported by gateways, NOT
   * derived from the log: kept across a rebuild.
   */
  activity: 'activity',
  /** Single-use keys (login state), SET NX PX. Not part of the projection. */
  once: 'once',
  /** The token of the rebuild in progress, with a TTL. Not part of the projection. */
  rebuilding: 'rebuilding',
  /** Pub/sub channel announcing each new applied sequence. */
  appliedChannel: 'applied-channel',
} as const;

/** The key builders of one key prefix. */
export interface RedisKeys {
  /** `<prefix>{s}:` — passed to the Lua scripts, which build keys with {@link LUA_KEY_BUILDERS}. */
  base: string;
  session(sessionId: string): string;
  userSessions(sub: string): string;
  idpSessions(issuer: string, sid: string): string;
  idpEnded(issuer: string, sid: string): string;
  signOut(sub: string): string;
  ended(sessionId: string): string;
  applied: string;
  /** The refresh schedule (ZSET, one for every provider: refreshAt says when, the record says which provider). */
  refreshDue: string;
  /** The activity index of one provider (ZSET). */
  activity(provider: string): string;
  once(key: string): string;
  /** Holds the running rebuild's token: while it exists, normal applies and session reads are refused. */
  rebuilding: string;
  appliedChannel: string;
  /** SCAN MATCH pattern of every session record. */
  sessionPattern: string;
  /** SCAN MATCH pattern of every user's sign-out watermark. */
  signOutPattern: string;
  /** SCAN MATCH pattern of every key of this prefix. */
  everyKeyPattern: string;
  /** True for a single-use key (kept by `dropProjection`: it is not derived from the log). */
  isOnceKey(key: string): boolean;
  /** True for a key `dropProjection` keeps: single-use keys, activity indexes and the rebuild marker (none is derived from the log). */
  isKeptOnDrop(key: string): boolean;
}

/** Builds the keys under `prefix` (config `key_prefix`, e.g. "portcullis:"). */
export function createRedisKeys(prefix: string): RedisKeys {
  const base = `${prefix}${HASH_TAG}:`;
  const glob = escapeGlob(base);
  return {
    base,
    session: (id) => `${base}${KeyKind.session}:${id}`,
    userSessions: (sub) => `${base}${KeyKind.userSessions}:${sub}`,
    // The issuer is length-prefixed (in UTF-8 bytes, as Lua's `#` counts) so no (issuer, sid) pair
    // can collide with another whatever characters they contain.
    idpSessions: (issuer, sid) => `${base}${KeyKind.idpSessions}:${Buffer.byteLength(issuer, 'utf8')}:${issuer}:${sid}`,
    idpEnded: (issuer, sid) => `${base}${KeyKind.idpEnded}:${Buffer.byteLength(issuer, 'utf8')}:${issuer}:${sid}`,
    signOut: (sub) => `${base}${KeyKind.signOut}:${sub}`,
    ended: (id) => `${base}${KeyKind.ended}:${id}`,
    applied: `${base}${KeyKind.applied}`,
    refreshDue: `${base}${KeyKind.refreshDue}`,
    // The provider is the key's only variable part and comes last, so every provider name, whatever
    // characters it holds (':' included), maps to its own key and to no other kind's.
    activity: (provider) => `${base}${KeyKind.activity}:${provider}`,
    once: (key) => `${base}${KeyKind.once}:${key}`,
    rebuilding: `${base}${KeyKind.rebuilding}`,
    appliedChannel: `${base}${KeyKind.appliedChannel}`,
    sessionPattern: `${glob}${KeyKind.session}:*`,
    signOutPattern: `${glob}${KeyKind.signOut}:*`,
    everyKeyPattern: `${glob}*`,
    isOnceKey: (key) => key.startsWith(`${base}${KeyKind.once}:`),
    isKeptOnDrop: (key) =>
      key.startsWith(`${base}${KeyKind.once}:`) || key.startsWith(`${base}${KeyKind.activity}:`) || key === `${base}${KeyKind.rebuilding}`,
  };
}

/**
 * The same builders in Lua, generated from the constants above so the scripts cannot drift from
 * TypeScript (a test compares both). Each takes `base` = {@link RedisKeys.base}.
 */
export const LUA_KEY_BUILDERS = `
local function key_session(base, id) return base .. '${KeyKind.session}:' .. id end
local function key_user_sessions(base, sub) return base .. '${KeyKind.userSessions}:' .. sub end
local function key_idp_sessions(base, issuer, sid) return base .. '${KeyKind.idpSessions}:' .. #issuer .. ':' .. issuer .. ':' .. sid end
local function key_idp_ended(base, issuer, sid) return base .. '${KeyKind.idpEnded}:' .. #issuer .. ':' .. issuer .. ':' .. sid end
local function key_sign_out(base, sub) return base .. '${KeyKind.signOut}:' .. sub end
local function key_ended(base, id) return base .. '${KeyKind.ended}:' .. id end
local function key_refresh_due(base) return base .. '${KeyKind.refreshDue}' end
local function key_activity(base, provider) return base .. '${KeyKind.activity}:' .. provider end
`;

/** Escapes Redis glob characters so a prefix is matched literally by SCAN MATCH. */
function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
