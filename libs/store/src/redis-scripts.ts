// The Lua scripts of the Redis projection: one atomic apply per event, one-round-trip reads, session upkeep.
import { LUA_KEY_BUILDERS } from './redis-keys.ts';

/** An IdP session a back-channel logout ended is remembered this long (for logins still finishing under it). */
export const IDP_SESSION_TOMBSTONE_MS = 24 * 60 * 60 * 1000;

/** A user's sign-out watermark outlives the last session it ends by this much (a minute of slack for clocks). */
export const SIGN_OUT_WATERMARK_MARGIN_MS = 60_000;

/** Prefix of the error reply of an apply refused because a rebuild is in progress. */
export const REBUILDING_REPLY = 'PORTCULLIS_REBUILDING';
/** Prefix of the error reply of a rebuild apply whose token no longer holds the rebuild marker. */
export const REBUILD_LOST_REPLY = 'PORTCULLIS_REBUILD_LOST';
/**
 * Prefix of the error reply of a normal apply or a session read that finds no applied sequence while
 * the caller has seen one: Redis lost the projection (restarted empty, flushed, failed over to an
 * empty replica, the key evicted). Applying the next event onto it would leave every earlier session
 * and sign-out out for good; answering "no such session" would delete live users' cookies.
 */
export const PROJECTION_LOST_REPLY = 'PORTCULLIS_PROJECTION_LOST';

/** At most this many dead entries are dropped from an index by one upkeep read (the next call goes on). */
export const MAX_PRUNED_PER_READ = 1000;

/**
 * Session helpers shared by the scripts (after the key builders). A record is stored as
 * '<identity JSON>\n<tokens JSON>' (see redis-record.ts); only the small identity part is decoded.
 */
const LUA_SESSION_HELPERS = `${LUA_KEY_BUILDERS}
local function record_identity_json(raw)
  local nl = string.find(raw, '\\n', 1, true)
  if nl then return string.sub(raw, 1, nl - 1) end
  return raw
end

local function record_identity(raw)
  return cjson.decode(record_identity_json(raw))
end

-- The identity of the session if it is live at now (the rule of getLiveSession: recorded, not
-- expired, started after its user's last sign-out), else nil; also its raw record. marks caches
-- the sign-out watermark of each sub met in one script run.
local function live_record(base, id, now, marks)
  local raw = redis.call('GET', key_session(base, id))
  if not raw then return nil end
  local rec = record_identity(raw)
  if rec.expiresAt <= now then return nil end
  local mark = marks[rec.sub]
  if mark == nil then
    mark = tonumber(redis.call('GET', key_sign_out(base, rec.sub)) or '0')
    marks[rec.sub] = mark
  end
  if rec.seq <= mark then return nil end
  return rec, raw
end
`;

/**
 * Applies one event atomically, or nothing when `seq <= applied` — so several session replicas
 * applying the same stream concurrently end in the state one would reach (each applies in order,
 * so whichever comes second finds the event applied and skips it).
 *
 * The rebuild guard comes first: a normal apply (token '') is refused while the rebuild marker
 * exists, because the rebuild replays from seq 1 and would skip every event a concurrent replica
 * had applied past it (`seq <= applied`); a rebuild apply runs only while its own token holds the marker.
 *
 * Then the loss guard: a normal apply whose caller has seen an applied sequence (ARGV[6] > 0) finds
 * none → {@link PROJECTION_LOST_REPLY}, and the projection must be rebuilt from the log.
 *
 * KEYS[1] applied seq, KEYS[2] rebuild marker. ARGV: seq, base, applied channel, event type,
 * rebuild token ('' = normal apply), the highest applied seq the caller has seen (0 = none), then per type:
 *   SessionStarted: sessionId, sub, issuer, sid ('' = none), expiresAt (unix ms), identity JSON,
 *     tokens JSON, provider, createdAt (unix ms), refreshAt (unix ms, '' = none)
 *   SessionEnded: sessionId · UserSignedOut: sub · IdpSessionEnded: issuer, sid ('' = none), sub ('' = none)
 *   SessionRefreshed: sessionId, tokens JSON, refreshAt (unix ms, '' = none)
 *
 * Upkeep indexes: the refresh schedule (derived from the log) and the per-provider activity ZSETs
 * (not derived: kept by a rebuild, hence ZADD GT when a replayed SessionStarted meets a later use).
 * Ending a session removes it from both; a sign-out stays O(1) and leaves them to the readers, which
 * drop dead members when they meet them.
 *
 * Every key sits under the same hash tag, so touching keys not in KEYS stays within one slot
 * (required by Redis Cluster). Returns 1 when applied, 0 when skipped.
 */
export const APPLY_EVENT_LUA = `${LUA_SESSION_HELPERS}
local holder = redis.call('GET', KEYS[2])
local token = ARGV[5]
if token == '' then
  if holder then return redis.error_reply('${REBUILDING_REPLY} the projection is being rebuilt') end
elseif holder ~= token then
  return redis.error_reply('${REBUILD_LOST_REPLY} this rebuild no longer holds the rebuild marker')
end
local applied_raw = redis.call('GET', KEYS[1])
if token == '' and not applied_raw and tonumber(ARGV[6]) > 0 then
  return redis.error_reply('${PROJECTION_LOST_REPLY} the projection holds no applied sequence, but #' .. ARGV[6] .. ' was applied before')
end
local applied = tonumber(applied_raw or '0')
local seq = tonumber(ARGV[1])
if seq <= applied then return 0 end
local base = ARGV[2]
local kind = ARGV[4]
-- ARGV[7..] are the event's own arguments.
local a = function(i) return ARGV[6 + i] end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

-- An index set lives as long as its longest-lived member; never shortened.
local function keep_until(key, at)
  local pttl = redis.call('PTTL', key)
  if pttl == -1 or now + pttl < at then redis.call('PEXPIREAT', key, string.format('%d', at)) end
end

-- Drops ids whose session record is gone (expired), so index sets do not grow without bound.
local function prune(key)
  for _, id in ipairs(redis.call('SMEMBERS', key)) do
    if redis.call('EXISTS', key_session(base, id)) == 0 then redis.call('SREM', key, id) end
  end
end

-- Drops the two oldest members of an upkeep ZSET if their record is gone (expired). Readers prune
-- what they meet, but nobody reads the activity of a provider without idle timeout: with two checks
-- per start, expired members leave at least as fast as sessions start, once the oldest live one
-- (which can hold the line only until its own expiry) is gone. Never during a rebuild: a record not
-- replayed yet would look gone, and the activity index is not rebuilt.
local function prune_oldest(key)
  if token ~= '' then return end
  for _, id in ipairs(redis.call('ZRANGE', key, 0, 1)) do
    if redis.call('EXISTS', key_session(base, id)) == 0 then redis.call('ZREM', key, id) end
  end
end

local function schedule_refresh(id, refresh_at)
  if refresh_at ~= '' then
    redis.call('ZADD', key_refresh_due(base), refresh_at, id)
  else
    redis.call('ZREM', key_refresh_due(base), id)
  end
end

-- Ends one session: record and index entries go, a tombstone stays until the session would have
-- expired, so a SessionStarted for the same id appended again later cannot bring it back.
local function end_session(id)
  local raw = redis.call('GET', key_session(base, id))
  local tomb = key_ended(base, id)
  redis.call('ZREM', key_refresh_due(base), id)
  if not raw then
    -- Nothing held (expired, never started, or already ended): nothing to end and no tombstone. Any
    -- tombstone of an earlier end stays as it was. An 'unknown' tombstone here would refuse every
    -- later session under the id (a header credential checked again) for 24 h, and a rebuild that
    -- meets an expired start before its end would drop a newer live session a live apply kept;
    -- the memory store and the gateways' caches end only sessions started before the end, too.
    return
  end
  local rec = record_identity(raw)
  redis.call('DEL', key_session(base, id))
  redis.call('ZREM', key_activity(base, rec.provider), id)
  redis.call('SREM', key_user_sessions(base, rec.sub), id)
  if type(rec.sid) == 'string' and rec.sid ~= '' then
    redis.call('SREM', key_idp_sessions(base, rec.issuer, rec.sid), id)
  end
  -- The tombstone names the ended record by its creation time: a replayed copy of that SessionStarted
  -- stays dead, while a new session under the same id (a header credential checked again) may start.
  redis.call('SET', tomb, string.format('%d', rec.createdAt))
  redis.call('PEXPIREAT', tomb, string.format('%d', rec.expiresAt))
end

if kind == 'SessionStarted' then
  local id, sub, issuer, sid, expires_at = a(1), a(2), a(3), a(4), tonumber(a(5))
  local provider, created_at, refresh_at = a(8), a(9), a(10)
  -- Ended before (tombstone for this very record; an 'unknown' one left by an older version names no
  -- record and refuses nothing), opened under an IdP session a back-channel logout already ended (the
  -- login raced it), or already expired (a rebuild replaying old history): nothing to hold.
  local tomb = redis.call('GET', key_ended(base, id))
  local created = string.format('%d', tonumber(created_at))
  local idp_ended = sid ~= '' and redis.call('EXISTS', key_idp_ended(base, issuer, sid)) == 1
  if (not tomb or tomb ~= created) and not idp_ended and expires_at > now then
    local skey = key_session(base, id)
    redis.call('SET', skey, a(6) .. '\\n' .. a(7))
    redis.call('PEXPIREAT', skey, a(5))
    local akey = key_activity(base, provider)
    prune_oldest(akey)
    prune_oldest(key_refresh_due(base))
    -- The start is the first use; GT: a rebuild replaying this start keeps a later recorded use.
    redis.call('ZADD', akey, 'GT', created_at, id)
    schedule_refresh(id, refresh_at)
    local ukey = key_user_sessions(base, sub)
    -- Pruning walks the whole set: do it only when the set doubles past 64, so adding the n-th session
    -- of one user stays amortised O(1) instead of O(n).
    local size = redis.call('SCARD', ukey)
    if size >= 64 and bit.band(size, size - 1) == 0 then prune(ukey) end
    redis.call('SADD', ukey, id)
    keep_until(ukey, expires_at)
    if sid ~= '' then
      local ikey = key_idp_sessions(base, issuer, sid)
      local isize = redis.call('SCARD', ikey)
      if isize >= 64 and bit.band(isize, isize - 1) == 0 then prune(ikey) end
      redis.call('SADD', ikey, id)
      keep_until(ikey, expires_at)
    end
  end
elseif kind == 'SessionEnded' then
  end_session(a(1))
elseif kind == 'UserSignedOut' then
  -- O(1) whatever the number of sessions: the watermark makes every older session of the user dead
  -- on read; their records are left to expire (UNLINK of the index frees it in the background).
  -- The watermark lives as long as the sessions it ends, not for ever: the user's index lives as long
  -- as its longest session, the previous watermark as long as the sessions of earlier sign-outs.
  local sub = a(1)
  local wkey, ukey = key_sign_out(base, sub), key_user_sessions(base, sub)
  local wttl, uttl = redis.call('PTTL', wkey), redis.call('PTTL', ukey)
  if wttl == -1 or uttl == -1 then
    -- A key without expiry (a watermark written before they expired): keep it so.
    redis.call('SET', wkey, ARGV[1])
  else
    redis.call('SET', wkey, ARGV[1], 'PX', string.format('%d', math.max(wttl, uttl, 0) + ${SIGN_OUT_WATERMARK_MARGIN_MS}))
  end
  redis.call('UNLINK', ukey)
elseif kind == 'SessionRefreshed' then
  -- Only a live session takes a refresh (never revives one). A record that exists was not ended:
  -- end_session deletes it and a tombstoned start never writes one. seq, createdAt, expiresAt and
  -- the TTL stay: the identity part is kept byte for byte, the tokens part replaced.
  local id = a(1)
  local rec, raw = live_record(base, id, now, {})
  if rec then
    redis.call('SET', key_session(base, id), record_identity_json(raw) .. '\\n' .. a(2), 'KEEPTTL')
    schedule_refresh(id, a(3))
  end
elseif kind == 'IdpSessionEnded' then
  local issuer, sid, sub = a(1), a(2), a(3)
  if sid ~= '' then
    local ikey = key_idp_sessions(base, issuer, sid)
    for _, id in ipairs(redis.call('SMEMBERS', ikey)) do end_session(id) end
    redis.call('DEL', ikey)
    -- A login still in flight under this IdP session appends its SessionStarted after this event.
    redis.call('SET', key_idp_ended(base, issuer, sid), ARGV[1], 'PX', ${IDP_SESSION_TOMBSTONE_MS})
  elseif sub ~= '' then
    for _, id in ipairs(redis.call('SMEMBERS', key_user_sessions(base, sub))) do
      local raw = redis.call('GET', key_session(base, id))
      if raw and record_identity(raw).issuer == issuer then end_session(id) end
    end
  end
else
  return redis.error_reply('unknown event type ' .. kind)
end

redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
`;

/**
 * Reads a session and its user's sign-out watermark in one round trip: the watermark key needs the
 * sub, which only the record knows, so a plain MGET cannot do it. While a rebuild runs it refuses
 * every read (the {@link REBUILDING_REPLY} error): a half-replayed projection may hold a session whose
 * sign-out is not replayed yet, so it cannot vouch for one; nor may it answer "no such session", which
 * a gateway takes as a stale cookie and deletes, logging a live user out for good.
 *
 * Likewise it refuses ({@link PROJECTION_LOST_REPLY}) when the projection holds no applied sequence
 * although the reader has seen one: Redis lost it, and a missing session proves nothing.
 *
 * KEYS[1] session key, KEYS[2] rebuild marker, KEYS[3] applied seq. ARGV[1] base, ARGV[2] the highest
 * applied seq the reader has seen (0 = none). Returns nil, or { record JSON, watermark ('0' = none) }.
 */
export const READ_SESSION_LUA = `${LUA_SESSION_HELPERS}
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.error_reply('${REBUILDING_REPLY} the projection is being rebuilt') end
if tonumber(ARGV[2]) > 0 and redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('${PROJECTION_LOST_REPLY} the projection holds no applied sequence, but #' .. ARGV[2] .. ' was applied before')
end
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local sub = record_identity(raw).sub
return { raw, redis.call('GET', key_sign_out(ARGV[1], sub)) or '0' }
`;

/**
 * Ids of live sessions whose refresh is due (score ≤ now), earliest first, at most `limit`, in one
 * round trip; dead ones met on the way are dropped from the schedule (at most
 * {@link MAX_PRUNED_PER_READ} per call). While a rebuild runs: none, and nothing is dropped — like
 * the session read, a half-replayed projection is not trusted.
 *
 * KEYS[1] refresh schedule, KEYS[2] rebuild marker. ARGV: base, now (unix ms), limit. Returns the ids.
 */
export const DUE_FOR_REFRESH_LUA = `${LUA_SESSION_HELPERS}
if redis.call('EXISTS', KEYS[2]) == 1 then return {} end
local base, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out, marks, pruned = {}, {}, 0
while #out < limit and pruned < ${MAX_PRUNED_PER_READ} do
  -- The live ids found so far stay at the front (the dead ones before them are removed): skip them.
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', #out, limit - #out)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    if live_record(base, id, now, marks) then
      out[#out + 1] = id
    else
      redis.call('ZREM', KEYS[1], id)
      pruned = pruned + 1
    end
  end
end
return out
`;

/**
 * Ids of live sessions of one provider last used before `before` (exclusive), oldest first, at most
 * `limit`; dead ones met on the way, and ids whose record names another provider (an id reused),
 * are dropped from the index (at most {@link MAX_PRUNED_PER_READ} per call). While a rebuild runs:
 * none, and nothing is dropped — the activity index is not rebuilt, so it must not lose a member
 * whose record is not replayed yet.
 *
 * KEYS[1] the provider's activity index, KEYS[2] rebuild marker. ARGV: base, before (unix ms),
 * limit, now (unix ms), provider. Returns the ids.
 */
export const IDLE_SESSIONS_LUA = `${LUA_SESSION_HELPERS}
if redis.call('EXISTS', KEYS[2]) == 1 then return {} end
local base, limit, now, provider = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local out, marks, pruned = {}, {}, 0
while #out < limit and pruned < ${MAX_PRUNED_PER_READ} do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', #out, limit - #out)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local rec = live_record(base, id, now, marks)
    if rec and rec.provider == provider then
      out[#out + 1] = id
    else
      redis.call('ZREM', KEYS[1], id)
      pruned = pruned + 1
    end
  end
end
return out
`;

/**
 * Reads what {@link SessionUpkeep.lastActivity} needs in one round trip: the record's identity part,
 * its user's sign-out watermark and its score in its provider's activity index ('' = none). Nil
 * for a missing record and while a rebuild runs (like the session read).
 *
 * KEYS[1] session key, KEYS[2] rebuild marker. ARGV[1] base.
 */
export const LAST_ACTIVITY_LUA = `${LUA_SESSION_HELPERS}
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local rec = record_identity(raw)
local score = redis.call('ZSCORE', key_activity(ARGV[1], rec.provider), rec.sessionId)
return { record_identity_json(raw), redis.call('GET', key_sign_out(ARGV[1], rec.sub)) or '0', score or '' }
`;

/**
 * Records a batch of session uses: per entry, ZADD GT into the activity index (a later use wins).
 * An id already in the index of the reported provider is updated there (also while a rebuild runs,
 * when its record may not be replayed yet: the index outlives the rebuild, and the gateway does not
 * report twice). Otherwise it is added only if its record exists, to the index of the provider the
 * record names (sessions recorded before the index existed); unknown and ended ids are ignored.
 *
 * KEYS[1] rebuild marker (unused: it routes the script to the projection's slot). ARGV: base, then
 * (sessionId, provider, at) per entry.
 */
export const RECORD_ACTIVITY_LUA = `${LUA_SESSION_HELPERS}
local base = ARGV[1]
for i = 2, #ARGV - 2, 3 do
  local id, at = ARGV[i], ARGV[i + 2]
  local akey = key_activity(base, ARGV[i + 1])
  if redis.call('ZSCORE', akey, id) then
    redis.call('ZADD', akey, 'XX', 'GT', at, id)
  else
    local raw = redis.call('GET', key_session(base, id))
    if raw then redis.call('ZADD', key_activity(base, record_identity(raw).provider), 'GT', at, id) end
  end
end
return 0
`;

/** Extends the rebuild marker's TTL if `token` (ARGV[1]) still holds it. KEYS[1] marker, ARGV[2] ttl ms. Returns 1, or 0 when not held. */
export const REFRESH_REBUILD_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

/**
 * Deletes the rebuild marker if `token` (ARGV[1]) holds it (never another rebuild's); a rebuild that
 * replayed nothing (an empty log) leaves applied seq 0, so the projection counts as present. KEYS[1]
 * marker, KEYS[2] applied seq. Returns 1, or 0 when not held.
 */
export const END_REBUILD_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '0', 'NX')
return 1
`;

/** Returns the keys the Lua builders make for the given parts (used by a test to check both sides agree). */
export const ECHO_KEYS_LUA = `${LUA_KEY_BUILDERS}
local base, id, sub, issuer, sid, provider = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
return {
  key_session(base, id), key_user_sessions(base, sub), key_idp_sessions(base, issuer, sid), key_sign_out(base, sub),
  key_ended(base, id), key_refresh_due(base), key_activity(base, provider), key_idp_ended(base, issuer, sid)
}
`;
