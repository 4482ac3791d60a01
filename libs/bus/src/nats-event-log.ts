// The session event log on a JetStream stream: de-duplicated appends, ordered consumers for subscribers.
import { randomUUID } from 'node:crypto';
import {
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type Consumer,
  JetStreamApiError,
  jetstream,
} from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { parseEvent, type SequencedEvent, type SessionEvent } from '@portcullis/events';
import { SpanKinds, contextFromHeaders, traceHeaders, tracingEnabled, withSpan } from '@portcullis/telemetry';
import { BusRequestError } from './errors.ts';
import { errorMessage } from './nats-connection.ts';
import { retryDelayMs, retryTransient } from './nats-retry.ts';
import { buildEventSubject } from './nats-subjects.ts';
import type { EventLog, Subscription } from './types.ts';

/** An append keeps retrying a leaderless stream this long (a re-election took 4.5–7 s here). */
export const APPEND_BUDGET_MS = 10_000;
/** Per-attempt wait for a PubAck; short so a dead leader is given up on quickly. */
const PUBLISH_TIMEOUT_MS = 2_000;
const LAST_SEQ_BUDGET_MS = 10_000;
/**
 * Pull settings of subscribers: the server answers each pull within 5 s and heartbeats every 1 s
 * while idle, so a subscriber whose consumer died with its server notices the silence (see below).
 */
const CONSUME_OPTIONS = { max_messages: 100, expires: 5_000, idle_heartbeat: 1_000 } as const;
/**
 * A subscriber waiting this long without a message or heartbeat (sent every 1 s) starts a new consumer:
 * three beats missed; a false alarm (a loop blocked that long) only costs one consumer creation.
 */
const STALLED_AFTER_MS = 3_000;
const STALL_CHECK_EVERY_MS = 1_000;
/**
 * A subscriber idle this long reads the stream's end; found behind it twice in a row with nothing
 * received between, it starts a new consumer. This covers a consumer that heartbeats but delivers
 * nothing (a delivery lost on the way, or a consumer whose server's replica of the stream stopped
 * taking new messages, nats-server#3299), which the heartbeat watchdog cannot see: a healthy
 * consumer delivers a stored message within milliseconds, so two reads this far apart never fire
 * on one. An idle subscriber costs its server one stream info request per this interval.
 */
const BEHIND_CHECK_EVERY_MS = 2_000;
/**
 * Per-request wait of a subscriber's JetStream API calls (stream info, consumer create/info/delete).
 * A server killed outright is not marked offline (nats-server 2.9.10 still chose it 45 s after a
 * SIGKILL): the meta leader places about a third of new R1 consumers on it, and that creation is never
 * answered. With the connection's 5 s timeout each such attempt cost 5 s (three in a row, 1 in 27,
 * stalled a subscriber past 20 s); a healthy creation answers in milliseconds, and one that is merely
 * slow is simply tried again.
 */
const SUBSCRIBER_REQUEST_TIMEOUT_MS = 2_000;
/** Consumer notifications that prove the server still serves the consumer. */
const SIGNS_OF_LIFE = new Set(['heartbeat', 'discard', 'ordered_consumer_recreated']);
/** Cap of the wait between attempts to re-create a subscriber's consumer. */
const RESUBSCRIBE_MAX_DELAY_MS = 2_000;

/**
 * JetStream API error codes of a publish refused for lack of room: the server's JetStream storage
 * (`max_file_store`, or the disk) is full (10023 insufficient resources, 10047 insufficient storage),
 * the account's JetStream limits are reached (10002), or a stream limit with discard "new" (10077
 * "maximum messages/bytes exceeded"). None goes away within a retry budget: the stream frees room only
 * as events pass `max_age`, which is days.
 */
const LOG_FULL_API_CODES = new Set([10002, 10023, 10047]);
const STREAM_LIMIT_REACHED = /maximum (messages|bytes|messages per subject) exceeded/i;

/** True when a publish failed because the stream, the account or the server has no room left. */
export function isLogFullError(err: unknown): boolean {
  if (!(err instanceof JetStreamApiError)) return false;
  return LOG_FULL_API_CODES.has(err.code) || STREAM_LIMIT_REACHED.test(err.message);
}

/** Reports something a caller may want to log (the bus never logs). */
export type BusStatusReporter = (s: { type: string; data?: unknown }) => void;

/** Calls `onBeat` for every notification of `messages` showing the server is alive, until it stops. */
async function watchBeats(messages: ConsumerMessages, onBeat: () => void): Promise<void> {
  for await (const n of messages.status()) if (SIGNS_OF_LIFE.has(n.type)) onBeat();
}

/** EventLog over one JetStream stream. */
export class NatsEventLog implements EventLog {
  readonly #js: JetStreamClient;
  /** Same connection, shorter request timeout: see {@link SUBSCRIBER_REQUEST_TIMEOUT_MS}. */
  readonly #subscriberJs: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #stream: string;
  readonly #report: BusStatusReporter;
  readonly #subscriptions = new Set<Subscription>();

  constructor(nc: NatsConnection, jsm: JetStreamManager, stream: string, report: BusStatusReporter) {
    this.#js = jetstream(nc);
    this.#subscriberJs = jetstream(nc, { timeout: SUBSCRIBER_REQUEST_TIMEOUT_MS });
    this.#jsm = jsm;
    this.#stream = stream;
    this.#report = report;
  }

  async append(event: SessionEvent): Promise<number> {
    return withSpan(
      'jetstream.append',
      { kind: SpanKinds.producer, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': buildEventSubject(event.type), 'portcullis.event.type': event.type } },
      async (span) => {
        const seq = await this.#append(event);
        span?.setAttribute('messaging.message.id', String(seq));
        return seq;
      },
    );
  }

  async #append(event: SessionEvent): Promise<number> {
    const data = JSON.stringify(event);
    // The trace context travels with the event, so its projection joins the trace that caused it.
    let hdrs: MsgHdrs | undefined;
    if (tracingEnabled()) {
      hdrs = natsHeaders();
      for (const [k, v] of Object.entries(traceHeaders())) hdrs.set(k, v);
    }
    try {
      // Retrying is safe: the stream de-duplicates by msgID, so a publish whose ack was lost answers
      // the second time with the sequence it was first recorded at.
      const ack = await retryTransient(
        () =>
          this.#js.publish(buildEventSubject(event.type), data, {
            msgID: event.id,
            expect: { streamName: this.#stream },
            ...(hdrs ? { headers: hdrs } : {}),
            timeout: PUBLISH_TIMEOUT_MS,
          }),
        APPEND_BUDGET_MS,
        // A full log says 503 like a leader election, but stays full: the caller gets its 503 at once.
        isLogFullError,
      );
      return ack.seq;
    } catch (err) {
      if (isLogFullError(err)) {
        throw new BusRequestError(
          'PORTCULLIS_BUS_LOG_FULL',
          `could not record ${event.type} ${event.id}: JetStream has no room left for stream ${this.#stream} (${errorMessage(err)}). ` +
            'Raise max_file_store in the jetstream block of every nats-server (or the account\'s JetStream storage limit, or the ' +
            'stream\'s max_bytes/max_msgs if you set any), or free disk space in the JetStream store directory; the stream drops ' +
            'events older than its max_age (the longest session + 1 day) by itself',
          { cause: err },
        );
      }
      throw new BusRequestError(
        'PORTCULLIS_BUS_APPEND_FAILED',
        `could not record ${event.type} ${event.id} in stream ${this.#stream}: ${errorMessage(err)}`,
        { cause: err },
      );
    }
  }

  async lastSeq(): Promise<number> {
    try {
      const info = await retryTransient(() => this.#jsm.streams.info(this.#stream), LAST_SEQ_BUDGET_MS);
      return info.state.last_seq;
    } catch (err) {
      throw new BusRequestError('PORTCULLIS_BUS_LOG_UNAVAILABLE', `could not read the state of stream ${this.#stream}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }

  subscribe(fromSeq: number, handler: (e: SequencedEvent) => Promise<void> | void, onError?: (err: unknown) => void): Subscription {
    let next = Math.max(1, fromSeq);
    let closed = false;
    let messages: ConsumerMessages | undefined;
    let consumer: Consumer | undefined;

    const stopConsumer = (): void => {
      messages?.stop();
      messages = undefined;
      // Ordered consumers are ephemeral; deleting saves the server 5 minutes of keeping it. Best effort.
      consumer?.delete().catch(() => {});
      consumer = undefined;
    };

    // One consumer at a time; when it ends for any reason but close or a handler failure, a new one
    // starts at the first sequence not yet handled, so nothing is skipped or handled twice.
    const run = async (): Promise<void> => {
      for (let attempt = 0; !closed; attempt++) {
        let watchdog: NodeJS.Timeout | undefined;
        // Named by us, so a creation given up on (perhaps placed on a dead server) can be deleted.
        const namePrefix = randomUUID().replaceAll('-', '');
        let created = false;
        try {
          consumer = await this.#subscriberJs.consumers.get(this.#stream, {
            deliver_policy: DeliverPolicy.StartSequence,
            opt_start_seq: next,
            name_prefix: namePrefix,
          });
          created = true;
          const current = await consumer.consume(CONSUME_OPTIONS);
          messages = current;
          if (closed) break;
          // The client recreates an ordered consumer it finds deleted, but not one whose only replica sat
          // on a server that died: asking for its info times out, forever. So: when we are waiting for a
          // message and the server has sent neither a message nor a heartbeat for a while, start afresh.
          let waitingSince: number | null = Date.now();
          let lastBeat = Date.now();
          void watchBeats(current, () => {
            lastBeat = Date.now();
          });
          // The end-of-log check (see BEHIND_CHECK_EVERY_MS): the sequence last found waiting behind the end.
          let behindAt = 0;
          let lastCheck = Date.now();
          let checking = false;
          watchdog = setInterval(() => {
            const now = Date.now();
            if (waitingSince === null) return;
            if (now - Math.max(waitingSince, lastBeat) >= STALLED_AFTER_MS) {
              this.#report({ type: 'log_subscription_stalled', data: { stream: this.#stream, nextSeq: next } });
              current.stop();
              return;
            }
            if (checking || now - waitingSince < BEHIND_CHECK_EVERY_MS || now - lastCheck < BEHIND_CHECK_EVERY_MS) return;
            checking = true;
            lastCheck = now;
            const waitingFor = next;
            this.#jsm.streams
              .info(this.#stream)
              .then(({ state }) => {
                // Still the same consumer, still idle and waiting for the same event, which the stream holds.
                const behind = messages === current && waitingSince !== null && next === waitingFor && state.last_seq >= Math.max(waitingFor, state.first_seq);
                if (!behind) behindAt = 0;
                else if (behindAt !== waitingFor) behindAt = waitingFor;
                else {
                  this.#report({ type: 'log_subscription_behind', data: { stream: this.#stream, nextSeq: next, lastSeq: state.last_seq } });
                  current.stop();
                }
              })
              // Unknown (a leader election, a reconnect): judged at the next check.
              .catch(() => {})
              .finally(() => {
                checking = false;
              });
          }, STALL_CHECK_EVERY_MS);
          for await (const m of current) {
            waitingSince = null;
            if (closed) break;
            if (m.seq > next) {
              // Events next..m.seq-1 are gone from the stream (aged past max_age, or dropped by a size limit).
              this.#report({ type: 'log_gap', data: { stream: this.#stream, missing: { from: next, to: m.seq - 1 } } });
            }
            if (m.seq >= next) {
              const outcome = await deliver(m.seq, m.data, m.headers);
              if (outcome === 'stopped') return;
              next = m.seq + 1;
              attempt = 0;
            }
            waitingSince = Date.now();
          }
        } catch (err) {
          if (closed) break;
          if (err instanceof Error && err.name === 'ClosedConnectionError') {
            // The connection is gone for good (it reconnects forever otherwise): nothing left to retry.
            closed = true;
            onError?.(err);
            break;
          }
          this.#report({ type: 'log_subscription_retry', data: { stream: this.#stream, nextSeq: next, error: errorMessage(err) } });
          // Best effort: drops the assignment of a consumer whose creation we stopped waiting for.
          if (!created) this.#jsm.consumers.delete(this.#stream, `${namePrefix}_1`).catch(() => {});
        } finally {
          clearInterval(watchdog);
          stopConsumer();
        }
        if (!closed) await new Promise((r) => setTimeout(r, Math.min(retryDelayMs(attempt), RESUBSCRIBE_MAX_DELAY_MS)));
      }
    };

    const deliver = async (seq: number, data: Uint8Array, hdrs: MsgHdrs | undefined): Promise<'ok' | 'stopped'> => {
      try {
        // A malformed or unknown event stops the subscription like a failing handler: a reader never guesses.
        const event = parseEvent(data);
        if (!tracingEnabled()) await handler({ seq, event });
        else {
          await withSpan(
            'jetstream.deliver',
            {
              kind: SpanKinds.consumer,
              parent: contextFromHeaders((k) => hdrs?.get(k)),
              attributes: { 'messaging.system': 'nats', 'messaging.message.id': String(seq), 'portcullis.event.type': event.type },
            },
            () => handler({ seq, event }),
          );
        }
        return 'ok';
      } catch (err) {
        closed = true;
        stopConsumer();
        onError?.(err);
        return 'stopped';
      }
    };

    const running = run();
    const subscription: Subscription = {
      close: async () => {
        closed = true;
        stopConsumer();
        await running;
        this.#subscriptions.delete(subscription);
      },
    };
    this.#subscriptions.add(subscription);
    return subscription;
  }

  /** Closes every subscription (in-flight handlers finish). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.#subscriptions].map((s) => s.close()));
  }
}
