// Request/reply on core NATS: servers share a subject in one queue group; replies are JSON envelopes.
import { errors, headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type Subscription as NatsSubscription } from '@nats-io/transport-node';
import { SpanKinds, contextFromHeaders, traceHeaders, tracingEnabled, withSpan } from '@portcullis/telemetry';
import { BusRequestError, fromWireError, toWireError, type WireError } from './errors.ts';
import { errorMessage, settleWithin } from './nats-connection.ts';
import { REQUEST_QUEUE_GROUP } from './nats-subjects.ts';
import type { GatherOptions, RequestBus, RequestHandler, Subscription } from './types.ts';

const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;
const DRAIN_TIMEOUT_MS = 2_000;

type Reply = { ok: true; value: unknown } | { ok: false; error: WireError };

/** RequestBus over core NATS; tracks handlers in flight so closing finishes them first. */
export class NatsRequestBus implements RequestBus {
  readonly #nc: NatsConnection;
  readonly #served = new Set<Subscription>();

  constructor(nc: NatsConnection) {
    this.#nc = nc;
  }

  async request<TReply>(subject: string, payload: unknown, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<TReply> {
    if (!tracingEnabled()) return this.#request<TReply>(subject, payload, timeoutMs);
    return withSpan(`nats.request ${subject}`, { kind: SpanKinds.client, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': subject } }, () =>
      this.#request<TReply>(subject, payload, timeoutMs),
    );
  }

  async #request<TReply>(subject: string, payload: unknown, timeoutMs: number): Promise<TReply> {
    let msg: Msg;
    try {
      msg = await this.#nc.request(subject, JSON.stringify(payload ?? null), { timeout: timeoutMs, ...withTraceHeaders() });
    } catch (err) {
      throw translateRequestError(err, subject, timeoutMs);
    }
    let reply: Reply;
    try {
      reply = JSON.parse(msg.string()) as Reply;
    } catch (err) {
      throw new BusRequestError('PORTCULLIS_BUS_BAD_REPLY', `${subject}: the reply is not JSON`, { statusCode: 502, cause: err });
    }
    if (!reply.ok) throw fromWireError(reply.error, subject);
    return reply.value as TReply;
  }

  serve(subject: string, handler: RequestHandler): Subscription {
    return this.#subscribe(subject, handler, REQUEST_QUEUE_GROUP);
  }

  listen(subject: string, handler: RequestHandler): Subscription {
    return this.#subscribe(subject, handler, undefined);
  }

  publish(subject: string, payload: unknown): void {
    try {
      this.#nc.publish(subject, JSON.stringify(payload ?? null), withTraceHeaders());
    } catch {
      // Closed or draining: a fan-out message has no one to reach.
    }
  }

  async gather<TReply>(subject: string, payload: unknown, opts: GatherOptions<TReply>): Promise<TReply[]> {
    const replies: TReply[] = [];
    const { done } = opts;
    try {
      const it = await this.#nc.requestMany(subject, JSON.stringify(payload ?? null), {
        ...withTraceHeaders(),
        // With `done`, counting would stop at answers from listeners nobody waits for.
        ...(done ? { strategy: 'timer' as const } : { strategy: 'count' as const, maxMessages: Math.max(1, opts.expect) }),
        maxWait: opts.timeoutMs,
      });
      for await (const msg of it) {
        try {
          const reply = JSON.parse(msg.string()) as Reply;
          if (reply.ok && reply.value !== undefined && reply.value !== null) replies.push(reply.value as TReply);
        } catch {
          // A malformed answer counts as no answer.
        }
        // Leaving the loop stops the iterator, which cancels the request and its timer.
        if (done?.(replies)) break;
      }
    } catch {
      // No responders or a closed connection: whatever arrived is the answer.
    }
    return replies;
  }

  async ping(): Promise<void> {
    await this.#nc.flush();
  }

  #subscribe(subject: string, handler: RequestHandler, queue: string | undefined): Subscription {
    const inFlight = new Set<Promise<void>>();
    const answer = async (msg: Msg): Promise<void> => {
      let reply: Reply;
      try {
        const payload = msg.data.length > 0 ? (JSON.parse(msg.string()) as unknown) : null;
        // Spans only for traced messages: heartbeats and other untraced fan-out stay out of the traces.
        const value = tracingEnabled() && msg.headers?.get('traceparent')
          ? await withSpan(
              `nats.serve ${subject}`,
              { kind: SpanKinds.server, parent: contextFromHeaders((k) => msg.headers?.get(k)), attributes: { 'messaging.system': 'nats', 'messaging.destination.name': subject } },
              () => handler(payload),
            )
          : await handler(payload);
        reply = { ok: true, value };
      } catch (err) {
        reply = { ok: false, error: toWireError(err) };
      }
      // A requester that gave up, or a connection that closed meanwhile, leaves nobody to answer.
      if (msg.reply) {
        try {
          msg.respond(JSON.stringify(reply));
        } catch {}
      }
    };
    const sub: NatsSubscription = this.#nc.subscribe(subject, {
      ...(queue ? { queue } : {}),
      // NATS v3 callbacks must not be async: the handler's promise is tracked instead of returned.
      callback: (err, msg) => {
        if (err) return;
        const p = answer(msg).finally(() => inFlight.delete(p));
        inFlight.add(p);
      },
    });
    let closing: Promise<void> | undefined;
    const subscription: Subscription = {
      close: () => {
        closing ??= (async () => {
          // Stop taking requests (queued ones are still handed to the callback), then finish what runs.
          // A drain needs the server; while disconnected, unsubscribing locally is all that can be done.
          if (!sub.isClosed()) await settleWithin(sub.drain(), DRAIN_TIMEOUT_MS).catch(() => sub.unsubscribe());
          await Promise.allSettled([...inFlight]);
          this.#served.delete(subscription);
        })();
        return closing;
      },
    };
    this.#served.add(subscription);
    return subscription;
  }

  /** Stops every served subject and waits for the handlers in flight. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.#served].map((s) => s.close()));
  }
}

/** `{ headers }` carrying the active trace context, or nothing when tracing is off. */
function withTraceHeaders(): { headers?: MsgHdrs } {
  if (!tracingEnabled()) return {};
  const h = natsHeaders();
  for (const [k, v] of Object.entries(traceHeaders())) h.set(k, v);
  return { headers: h };
}

function translateRequestError(err: unknown, subject: string, timeoutMs: number): BusRequestError {
  if (err instanceof errors.RequestError && err.isNoResponders()) {
    return new BusRequestError('PORTCULLIS_BUS_NO_RESPONDER', `no service answers ${subject}`, { cause: err });
  }
  if (err instanceof errors.TimeoutError) {
    return new BusRequestError('PORTCULLIS_BUS_TIMEOUT', `${subject} did not answer within ${timeoutMs} ms`, { statusCode: 504, cause: err });
  }
  return new BusRequestError('PORTCULLIS_BUS_REQUEST_FAILED', `${subject}: ${errorMessage(err)}`, { cause: err });
}
