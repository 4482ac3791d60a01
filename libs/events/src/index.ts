// Public entry of @portcullis/events: event types, envelopes and the the messages of the auth and session services.
export * from './events.ts';
export { createEvent, parseEvent } from './create-event.ts';
export * from './auth-messages.ts';
export * from './session-messages.ts';
export { SeqWaiters } from './seq-waiters.ts';
