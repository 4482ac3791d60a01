// Builds event envelopes and validates events read back from a log.
import { randomUUID } from 'node:crypto';
import { EVENT_VERSION, type SessionEvent } from './events.ts';

type DataOf<T extends SessionEvent['type']> = Extract<SessionEvent, { type: T }>['data'];

/**
 * Wraps `data` in a fresh envelope (current time). The id is random unless `id` is given: a
 * deterministic id makes concurrent appends of the same decision (two replicas ending the same idle
 * session) collapse into one event, since the log de-duplicates by id.
 */
export function createEvent<T extends SessionEvent['type']>(type: T, data: DataOf<T>, id?: string): Extract<SessionEvent, { type: T }> {
  return { type, version: EVENT_VERSION, id: id ?? randomUUID(), occurredAt: new Date().toISOString(), data } as Extract<
    SessionEvent,
    { type: T }
  >;
}

const KNOWN_TYPES = new Set(['SessionStarted', 'SessionEnded', 'UserSignedOut', 'IdpSessionEnded', 'SessionRefreshed']);

/** Parses a serialized event; throws on an unknown type or version so a reader never guesses. */
export function parseEvent(json: string | Uint8Array): SessionEvent {
  const text = typeof json === 'string' ? json : new TextDecoder().decode(json);
  const value = JSON.parse(text) as Partial<SessionEvent>;
  if (!value || typeof value !== 'object' || !KNOWN_TYPES.has(String(value.type))) {
    throw new Error(`unknown event type ${JSON.stringify(value?.type)}`);
  }
  if (value.version !== EVENT_VERSION) {
    throw new Error(`unsupported ${value.type} version ${value.version} (this build reads ${EVENT_VERSION})`);
  }
  if (typeof value.id !== 'string' || !value.data || typeof value.data !== 'object') {
    throw new Error(`malformed ${value.type} event`);
  }
  return value as SessionEvent;
}
