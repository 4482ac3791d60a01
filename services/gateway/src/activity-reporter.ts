// Batches the sessions this gateway saw in use and reports them to the session service (idle timeouts).
import type { RequestBus } from '@portcullis/bus';
import { MAX_ACTIVITY_INTERVAL_MS, type ProviderConfig, activityIntervalMs } from '@portcullis/config';
import { type ActivityReport, SESSION_SUBJECTS } from '@portcullis/events';

const DEFAULT_MAX_PENDING = 200_000;
/** Entries per request: ~110 bytes each, so a request stays well under NATS's default 1 MiB payload limit. */
const DEFAULT_BATCH_SIZE = 5_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

/** Options of {@link ActivityReporter}. */
export interface ActivityReporterOptions {
  rpc: Pick<RequestBus, 'request'>;
  /** The providers of the current config: the flush interval follows their idle timeouts. */
  providers: readonly Pick<ProviderConfig, 'idle_timeout'>[];
  /** Fixed flush interval (ms) instead of the one derived from the providers (tests). */
  flushMs?: number;
  /** Most sessions held between reports; when full, the oldest are dropped with a warning. Default 200 000. */
  maxPending?: number;
  /** Entries per request. Default 5000. */
  batchSize?: number;
  /** Timeout of one report request (ms). Default 5000. */
  requestTimeoutMs?: number;
  log?: { warn(obj: object, msg: string): void };
  /** Called after each report attempt with the entries sent and whether every request was answered (metrics). */
  onFlush?: (sent: number, ok: boolean) => void;
}

type Entry = ActivityReport['entries'][number];

/**
 * Remembers, per session, the latest request that used it (`touch`: one Map lookup on the hot path,
 * nothing awaited) and sends them in batches to the session service every flush interval. A report
 * that fails is kept and merged into the next one (latest use wins), so a session service that is
 * briefly away loses nothing; the pending map is bounded (oldest dropped first, with a warning).
 */
export class ActivityReporter {
  readonly #opts: ActivityReporterOptions;
  readonly #max: number;
  readonly #batchSize: number;
  #pending = new Map<string, Entry>();
  #flushMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #flushing: Promise<void> | undefined;
  /** The latest report failed: no early flush when full (that would hammer a service that is down). */
  #lastFailed = false;
  #dropped = 0;

  constructor(opts: ActivityReporterOptions) {
    this.#opts = opts;
    this.#max = opts.maxPending ?? DEFAULT_MAX_PENDING;
    this.#batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    this.#flushMs = this.#intervalFor(opts.providers);
  }

  /** Current flush interval (ms). */
  get flushMs(): number {
    return this.#flushMs;
  }

  /** Sessions waiting for the next report. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Records a use of `session` at `now` (unix ms), for every provider: a provider without an idle
   * timeout may get one by a reload, which must then see the real last uses.
   */
  touch(session: { sessionId: string; provider: string }, now: number): void {
    const e = this.#pending.get(session.sessionId);
    if (e !== undefined) {
      if (now > e.at) e.at = now;
      return;
    }
    if (this.#pending.size >= this.#max) this.#makeRoom();
    this.#pending.set(session.sessionId, { sessionId: session.sessionId, provider: session.provider, at: now });
  }

  /** Follows a new config: the flush interval is recomputed from its providers' idle timeouts. */
  configure(providers: readonly Pick<ProviderConfig, 'idle_timeout'>[]): void {
    const next = this.#intervalFor(providers);
    if (next === this.#flushMs) return;
    this.#flushMs = next;
    if (this.#running && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#schedule();
    }
  }

  /** Starts the periodic reports. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule();
  }

  /** Stops the periodic reports and sends what is pending once (a failure is logged, not retried). */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }

  /**
   * Sends everything pending now (after a report already under way); resolves when done. Never
   * rejects: failed entries are kept for the next report.
   */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
    // No await before this line when idle: #makeRoom relies on the pending map being swapped synchronously.
    const sending = this.#send().finally(() => {
      if (this.#flushing === sending) this.#flushing = undefined;
    });
    this.#flushing = sending;
    await sending;
  }

  #intervalFor(providers: readonly Pick<ProviderConfig, 'idle_timeout'>[]): number {
    return this.#opts.flushMs ?? activityIntervalMs(providers) ?? MAX_ACTIVITY_INTERVAL_MS;
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush().then(() => {
        if (this.#running && this.#timer === undefined) this.#schedule();
      });
    }, this.#flushMs);
    this.#timer.unref();
  }

  /** The map is full: report now when the service answered last time, otherwise drop the oldest entry. */
  #makeRoom(): void {
    if (!this.#flushing && !this.#lastFailed) {
      // #send swaps the pending map before its first await, so there is room once this returns.
      void this.flush();
      if (this.#pending.size < this.#max) return;
    }
    const oldest = this.#pending.keys().next().value;
    if (oldest !== undefined) this.#pending.delete(oldest);
    this.#dropped += 1;
  }

  async #send(): Promise<void> {
    const batch = [...this.#pending.values()];
    this.#pending = new Map();
    let sent = 0;
    let failedFrom = -1;
    for (let i = 0; i < batch.length; i += this.#batchSize) {
      const report: ActivityReport = { entries: batch.slice(i, i + this.#batchSize) };
      try {
        await this.#opts.rpc.request(SESSION_SUBJECTS.activity, report, this.#opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
        sent += report.entries.length;
      } catch (err) {
        // The service is away or refused: keep this chunk and the rest for the next report.
        failedFrom = i;
        this.#opts.log?.warn(
          { err, kept: batch.length - i },
          'session activity report failed; kept for the next report (idle sessions are ended by the session service: check that one runs)',
        );
        break;
      }
    }
    const ok = failedFrom === -1;
    if (!ok) this.#keep(batch.slice(failedFrom));
    this.#lastFailed = !ok;
    if (this.#dropped > 0) {
      this.#opts.log?.warn(
        { dropped: this.#dropped, max: this.#max },
        'session activity dropped: too many sessions waiting for a report (is the session service answering?); those sessions may be ended as idle',
      );
      this.#dropped = 0;
    }
    if (batch.length > 0) this.#opts.onFlush?.(sent, ok);
  }

  /** Puts unsent entries back before the ones touched meanwhile (latest use wins), bounded to the max. */
  #keep(unsent: Entry[]): void {
    const merged = new Map<string, Entry>();
    for (const e of unsent) merged.set(e.sessionId, e);
    for (const [id, e] of this.#pending) {
      const old = merged.get(id);
      if (old !== undefined) {
        merged.delete(id);
        if (old.at > e.at) e.at = old.at;
      }
      merged.set(id, e);
    }
    for (const id of merged.keys()) {
      if (merged.size <= this.#max) break;
      merged.delete(id);
      this.#dropped += 1;
    }
    this.#pending = merged;
  }
}
