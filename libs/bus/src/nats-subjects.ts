// NATS names used by the cluster bus: event subjects and the request/reply queue group, built in one place.
import type { SessionEventType } from '@portcullis/events';

/** Every event subject starts with this; the stream captures `portcullis.events.>`. */
export const EVENT_SUBJECT_PREFIX = 'portcullis.events';

/** Subject filter of the session stream. */
export const EVENT_STREAM_SUBJECTS = [`${EVENT_SUBJECT_PREFIX}.>`];

/** Queue group every `serve` joins, so the replicas of one service share the requests. */
export const REQUEST_QUEUE_GROUP = 'portcullis';

/** Subject an event of `type` is published to. */
export function buildEventSubject(type: SessionEventType): string {
  return `${EVENT_SUBJECT_PREFIX}.${type}`;
}
