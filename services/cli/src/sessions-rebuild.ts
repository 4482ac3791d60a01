// `portcullis sessions rebuild`: drops the Redis projection and replays the whole log into it, holding the rebuild marker.
import { randomUUID } from 'node:crypto';
import type { EventLog, Subscription } from '@portcullis/bus';
import type { RedisStore } from '@portcullis/store';

/**
 * TTL of the rebuild marker. While it exists gateways refuse every session read from Redis and
 * session services pause, so a crashed rebuild must not hold it long; it is refreshed every third.
 */
export const REBUILD_TTL_MS = 15_000;
/** A replay that delivers nothing for this long while events remain is reported as failed, not waited on forever. */
export const REBUILD_STALL_MS = 30_000;

/** The part of the Redis store a rebuild uses. */
export type RebuildStore = Pick<RedisStore, 'beginRebuild' | 'refreshRebuild' | 'applyAs' | 'endRebuild' | 'dropProjection'>;

/** Options of {@link rebuildProjection}. */
export interface RebuildOptions {
  log: EventLog;
  store: RebuildStore;
  /** Default {@link REBUILD_TTL_MS}. */
  ttlMs?: number;
  /** Default {@link REBUILD_STALL_MS}. */
  stallMs?: number;
  /** After each replayed event: its seq, and the log's last seq as last read (it grows when events arrive meanwhile). */
  onProgress?: (seq: number, lastSeq: number) => void;
  /** Once the rebuild holds the marker (before anything is dropped). */
  onBegun?: () => void;
}

/** What a rebuild did. */
export interface RebuildResult {
  /** Events applied from the log. */
  replayed: number;
  /** Sequence the projection was rebuilt up to. */
  appliedSeq: number;
}

/**
 * Rebuilds the projection: `beginRebuild` → `dropProjection` → replay the log from seq 1 with
 * `applyAs` until it has applied the log's last seq (read again at the end, so events appended
 * meanwhile are included) → `endRebuild`. The marker is removed in every case (a failure included);
 * if even that fails, its TTL frees the projection. Session services resume after it on their own.
 */
export async function rebuildProjection(opts: RebuildOptions): Promise<RebuildResult> {
  const { log, store } = opts;
  const ttlMs = opts.ttlMs ?? REBUILD_TTL_MS;
  const stallMs = opts.stallMs ?? REBUILD_STALL_MS;
  const token = randomUUID();
  await store.beginRebuild(token, ttlMs);
  opts.onBegun?.();

  let sub: Subscription | undefined;
  let refresher: NodeJS.Timeout | undefined;
  let stallCheck: NodeJS.Timeout | undefined;
  try {
    // Anything that goes wrong in the background (refresh, subscription) rejects this promise.
    let abort: (err: unknown) => void = () => {};
    const aborted = new Promise<never>((_, reject) => {
      abort = reject;
    });
    aborted.catch(() => {});
    refresher = setInterval(() => store.refreshRebuild(token, ttlMs).catch(abort), Math.max(10, ttlMs / 3));

    await store.dropProjection();
    let target = await log.lastSeq();
    let applied = 0;
    let replayed = 0;
    let lastProgressAt = Date.now();
    let reached: { seq: number; resolve: () => void } | undefined;
    opts.onProgress?.(0, target);

    stallCheck = setInterval(
      () => {
        if (applied < target && Date.now() - lastProgressAt > stallMs) {
          abort(new Error(`the log delivered nothing for ${stallMs} ms while events up to #${target} remained (replayed up to #${applied})`));
        }
      },
      Math.min(1_000, stallMs),
    );

    sub = log.subscribe(
      1,
      async (e) => {
        await store.applyAs(token, e);
        applied = e.seq;
        replayed += 1;
        lastProgressAt = Date.now();
        opts.onProgress?.(applied, Math.max(target, applied));
        if (reached && applied >= reached.seq) reached.resolve();
      },
      abort,
    );

    const until = (seq: number): Promise<void> =>
      applied >= seq
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            reached = { seq, resolve };
          });
    for (;;) {
      await Promise.race([until(target), aborted]);
      // Events appended while replaying are replayed too: done only once nothing newer exists.
      const latest = await Promise.race([log.lastSeq(), aborted]);
      if (latest <= applied) break;
      target = latest;
      lastProgressAt = Date.now();
    }
    return { replayed, appliedSeq: applied };
  } finally {
    clearInterval(refresher);
    clearInterval(stallCheck);
    await sub?.close().catch(() => {});
    // Best effort: if Redis is gone too, the marker's TTL ends the pause anyway.
    await store.endRebuild(token).catch(() => false);
  }
}
