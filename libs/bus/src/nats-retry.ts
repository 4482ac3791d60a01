// Tells passing NATS failures (leader election, reconnect) from permanent ones, and retries the former.
import { JetStreamApiError } from '@nats-io/jetstream';
import { errors } from '@nats-io/transport-node';

/** Error names that mean "nobody could answer right now" rather than "the answer is no". */
const TRANSIENT_NAMES = new Set(['TimeoutError', 'NoResponders', 'JetStreamNotEnabled', 'ConnectionError']);

/** JetStream API errors that a leader election explains: cluster unavailable, not leader, stream offline. */
const TRANSIENT_API_CODES = new Set([10008, 10009, 10118]);

/**
 * True for failures that go away by themselves: a timeout or no responders while a stream or meta
 * leader is elected, a request cut by a reconnect, or a JetStream API "temporarily unavailable" (5xx).
 */
export function isTransientNatsError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof errors.ClosedConnectionError || err instanceof errors.DrainingConnectionError) return false;
  if (err instanceof JetStreamApiError) return err.status === 503 || err.status === 408 || TRANSIENT_API_CODES.has(err.code);
  if (err instanceof errors.RequestError) return true;
  return TRANSIENT_NAMES.has(err.name);
}

/** Delay before retry `attempt` (0-based): quick first, capped so a new leader is noticed soon. */
export function retryDelayMs(attempt: number): number {
  return Math.min(100 * 2 ** attempt, 1_000);
}

/**
 * Runs `fn` until it succeeds, a non-transient error occurs, `shouldStop(err)` turns true, or `budgetMs`
 * has passed; the last error is rethrown.
 */
export async function retryTransient<T>(fn: () => Promise<T>, budgetMs: number, shouldStop: (err: unknown) => boolean = () => false): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const wait = retryDelayMs(attempt);
      if (!isTransientNatsError(err) || shouldStop(err) || Date.now() + wait > deadline) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
