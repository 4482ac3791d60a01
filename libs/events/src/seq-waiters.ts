// Waiters for a log position: "resolve when sequence N has been applied here, or give up after a time".

/** A set of pending waits on a monotonically increasing applied sequence. */
export class SeqWaiters {
  readonly #waiters = new Set<{ seq: number; resolve: (ok: boolean) => void; timer: NodeJS.Timeout }>();

  /** Resolves true once {@link settle} reports `seq` (or more) applied, `onTimeout()` after `timeoutMs`. */
  wait(seq: number, timeoutMs: number, onTimeout: () => Promise<boolean> | boolean = () => false): Promise<boolean> {
    return new Promise((resolve) => {
      const waiter = {
        seq,
        resolve,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          Promise.resolve()
            .then(onTimeout)
            .then(resolve, () => resolve(false));
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  /** Resolves every wait for a sequence ≤ `applied`. */
  settle(applied: number): void {
    for (const w of this.#waiters) {
      if (w.seq <= applied) {
        clearTimeout(w.timer);
        this.#waiters.delete(w);
        w.resolve(true);
      }
    }
  }

  /** Number of pending waits. */
  get size(): number {
    return this.#waiters.size;
  }

  /** Resolves every pending wait with false (closing). */
  cancelAll(): void {
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
    this.#waiters.clear();
  }
}
