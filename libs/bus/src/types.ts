// The two ports every service talks through: an ordered event log and request/reply.
import type { SequencedEvent, SessionEvent } from '@portcullis/events';

/** A running subscription; `close` stops delivery (in-flight handlers finish). */
export interface Subscription {
  close(): Promise<void>;
}

/** The session event log: one total order, sequence numbers starting at 1. */
export interface EventLog {
  /** Appends and resolves with the event's sequence once it is durably recorded. Same `event.id` twice → same seq. */
  append(event: SessionEvent): Promise<number>;
  /** Sequence of the newest event (0 when empty). */
  lastSeq(): Promise<number>;
  /**
   * Delivers every event with seq ≥ `fromSeq`, in order, one at a time (the next waits for the
   * handler's promise). A handler that throws stops the subscription and reports via `onError`.
   */
  subscribe(fromSeq: number, handler: (e: SequencedEvent) => Promise<void> | void, onError?: (err: unknown) => void): Subscription;
}

/** A handler answers one request; what it throws reaches the requester as a BusRequestError. */
export type RequestHandler = (payload: unknown) => Promise<unknown>;

/** How long {@link RequestBus.gather} collects answers. */
export interface GatherOptions<TReply> {
  expect: number;
  timeoutMs: number;
  /** Stop once this holds for the answers so far (then `expect` is ignored). */
  done?: (replies: readonly TReply[]) => boolean;
}

/** Request/reply between services (NATS request/reply with a queue group in a cluster), plus fan-out. */
export interface RequestBus {
  /** One answer from one of the servers of `subject` (they load-balance). */
  request<TReply>(subject: string, payload: unknown, timeoutMs?: number): Promise<TReply>;
  /** Serves `subject` in the shared queue group: each request reaches one server. */
  serve(subject: string, handler: RequestHandler): Subscription;
  /** Fan-out: every listener of `subject` receives every message; its return value answers `gather`. */
  listen(subject: string, handler: RequestHandler): Subscription;
  /** Fire-and-forget fan-out to every listener. */
  publish(subject: string, payload: unknown): void;
  /**
   * Fan-out that collects the listeners' answers until `expect` arrived or `timeoutMs` passed; with
   * `done`, until `done(replies)` holds instead (answers from unexpected listeners do not count).
   */
  gather<TReply>(subject: string, payload: unknown, opts: GatherOptions<TReply>): Promise<TReply[]>;
  /** Resolves after a round trip to the bus (a NATS PING/PONG; immediate when embedded). */
  ping(): Promise<void>;
}

/** Everything a process needs from the bus. */
export interface Bus {
  log: EventLog;
  rpc: RequestBus;
  close(): Promise<void>;
}
