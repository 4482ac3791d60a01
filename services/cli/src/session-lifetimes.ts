// Lifetimes derived from the providers: the longest session, and how long the event stream keeps events.
import type { PortcullisConfig } from '@portcullis/config';

/** Margin the stream keeps events beyond the longest session, for operators (a day). */
const STREAM_MARGIN_SECONDS = 86_400;

/** The longest session any provider allows (seconds). */
export function maxSessionSeconds(config: PortcullisConfig): number {
  return Math.max(...config.providers.map((p) => p.access_token_validity));
}

/**
 * The stream's `max_age` (seconds): events older than any session cannot matter any more. Every
 * process that opens the bus must pass the same value, or it would rewrite the stream's limits.
 */
export function streamMaxAgeSeconds(config: PortcullisConfig): number {
  return maxSessionSeconds(config) + STREAM_MARGIN_SECONDS;
}
