// Logs why proxied requests failed upstream (the 502s): one line per upstream at most every 10 s, with how many failures it stood for.
import type { UpstreamObserver } from './upstream.ts';

/** What is logged of a failure, besides the message. */
interface FailureLog {
  warn(obj: object, msg: string): void;
}

/**
 * Wraps `observe` (metrics) so that every upstream failure is also logged, except a client leaving
 * mid answer (not the upstream's doing). A dead upstream under load fails every request: after a
 * line for an upstream, its next failures within `everyMs` are only counted, and the next line says
 * how many there were.
 */
export function logUpstreamFailures(log: FailureLog, observe: UpstreamObserver | undefined, everyMs = 10_000): UpstreamObserver {
  const lastLine = new Map<string, { at: number; since: number }>();
  return (answer, method, seconds, error) => {
    observe?.(answer, method, seconds, error);
    if (error === undefined || (error as Error).name === 'ClientGoneError') return;
    const now = performance.now();
    const last = lastLine.get(answer.origin);
    if (last !== undefined && now - last.at < everyMs) {
      last.since++;
      return;
    }
    // Origins come from config and backend_override mappings: bounded, but never let the map grow without limit.
    if (last === undefined && lastLine.size >= 1024) lastLine.clear();
    lastLine.set(answer.origin, { at: now, since: 0 });
    const err = error as Error & { code?: string };
    log.warn(
      {
        provider: answer.provider.name,
        upstream: answer.origin,
        method,
        code: err.code,
        error: err.message,
        seconds: Math.round(seconds * 1000) / 1000,
        ...(last !== undefined && last.since > 0 ? { more_failures_since_last_line: last.since } : {}),
      },
      'proxy: the upstream request failed (the client got a 502, or a cut answer if it had started)',
    );
  };
}
