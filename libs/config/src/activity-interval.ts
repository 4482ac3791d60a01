// The idle-timeout cadence shared by gateways (activity reports) and the session service (sweeps, grace period).
import type { ProviderConfig } from './types.ts';

/** Longest interval between two activity reports, and between two idle sweeps (ms). */
export const MAX_ACTIVITY_INTERVAL_MS = 15_000;
/** A report or sweep interval covers at most 1/IDLE_FRACTION of the shortest idle timeout. */
const IDLE_FRACTION = 5;

/**
 * min(15 s, smallest idle_timeout / 5): how often gateways report session use, how often the session
 * service sweeps, and how long past its timeout an idle session is spared (a use not yet reported
 * must not end it). null when no provider has an idle timeout (nothing to report or sweep).
 */
export function activityIntervalMs(providers: readonly Pick<ProviderConfig, 'idle_timeout'>[]): number | null {
  let smallest = Number.POSITIVE_INFINITY;
  for (const p of providers) if (p.idle_timeout !== null && p.idle_timeout < smallest) smallest = p.idle_timeout;
  if (smallest === Number.POSITIVE_INFINITY) return null;
  return Math.min(MAX_ACTIVITY_INTERVAL_MS, Math.floor((smallest * 1000) / IDLE_FRACTION));
}
