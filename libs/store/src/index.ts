// Public entry of @portcullis/store: the session projection port and its adapters.
export type { SessionRecord, SessionReader, SessionProjection, OnceStore, SessionStore, SessionUpkeep, SessionActivity, IdpSessionTombstones } from './types.ts';
export { createMemoryStore } from './memory-store.ts';
export { createRedisStore, type RedisStore, type RedisStoreOptions } from './redis-store.ts';
export { StoreError, StoreErrorCode } from './errors.ts';
