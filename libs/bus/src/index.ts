// Public entry of @portcullis/bus: the EventLog / RequestBus ports and their adapters.
export type { Bus, EventLog, GatherOptions, RequestBus, RequestHandler, Subscription } from './types.ts';
export { BusRequestError, toWireError, fromWireError, type WireError } from './errors.ts';
export { createMemoryBus } from './memory-bus.ts';
export { createNatsBus, type NatsBus, type NatsBusOptions } from './nats-bus.ts';
export { APPEND_BUDGET_MS } from './nats-event-log.ts';
export { BusStartError, BusStartErrorCode } from './bus-start-error.ts';
export { buildEventSubject, EVENT_SUBJECT_PREFIX, REQUEST_QUEUE_GROUP } from './nats-subjects.ts';
