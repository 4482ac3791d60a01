// Embedded (single-process) bus: an in-memory ordered log and in-process request/reply.
// Not a mock: the supported single-node mode. Payloads cross a JSON round trip exactly as on NATS.
import type { SequencedEvent, SessionEvent } from '@portcullis/events';
import { BusRequestError, fromWireError, toWireError, type WireError } from './errors.ts';
import type { Bus, EventLog, GatherOptions, RequestBus, RequestHandler, Subscription } from './types.ts';

class MemoryEventLog implements EventLog {
  readonly #events: SequencedEvent[] = [];
  readonly #seqById = new Map<string, number>();
  readonly #listeners = new Set<() => void>();

  async append(event: SessionEvent): Promise<number> {
    const known = this.#seqById.get(event.id);
    if (known !== undefined) return known;
    const seq = this.#events.length + 1;
    // Store a copy so later mutation by the caller cannot change history.
    this.#events.push({ seq, event: JSON.parse(JSON.stringify(event)) as SessionEvent });
    this.#seqById.set(event.id, seq);
    for (const wake of this.#listeners) wake();
    return seq;
  }

  async lastSeq(): Promise<number> {
    return this.#events.length;
  }

  subscribe(fromSeq: number, handler: (e: SequencedEvent) => Promise<void> | void, onError?: (err: unknown) => void): Subscription {
    let next = Math.max(1, fromSeq);
    let closed = false;
    // Wake-ups are chained on one promise, so deliveries never overlap and stay in order.
    let running: Promise<void> = Promise.resolve();
    const pump = async (): Promise<void> => {
      try {
        while (!closed && next <= this.#events.length) {
          const e = this.#events[next - 1]!;
          await handler(e);
          next += 1;
        }
      } catch (err) {
        closed = true;
        this.#listeners.delete(wake);
        onError?.(err);
      }
    };
    const wake = (): void => {
      running = running.then(pump);
    };
    this.#listeners.add(wake);
    wake();
    return {
      close: async () => {
        closed = true;
        this.#listeners.delete(wake);
        await running;
      },
    };
  }
}

/** Same default as the NATS adapter. */
const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;

class MemoryRequestBus implements RequestBus {
  readonly #handlers = new Map<string, RequestHandler[]>();
  readonly #listeners = new Map<string, Set<RequestHandler>>();
  #turn = 0;

  listen(subject: string, handler: RequestHandler): Subscription {
    const set = this.#listeners.get(subject) ?? new Set();
    set.add(handler);
    this.#listeners.set(subject, set);
    return { close: async () => void set.delete(handler) };
  }

  publish(subject: string, payload: unknown): void {
    for (const h of this.#listeners.get(subject) ?? []) {
      h(JSON.parse(JSON.stringify(payload ?? null))).catch(() => {});
    }
  }

  async gather<TReply>(subject: string, payload: unknown, opts: GatherOptions<TReply>): Promise<TReply[]> {
    const replies: TReply[] = [];
    const all = [...(this.#listeners.get(subject) ?? [])].map((h) =>
      h(JSON.parse(JSON.stringify(payload ?? null))).then(
        (v) => {
          if (v !== undefined) replies.push(JSON.parse(JSON.stringify(v)) as TReply);
        },
        () => {},
      ),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, opts.timeoutMs);
    });
    const enough = (async () => {
      for (const p of all) {
        await p;
        if (opts.done ? opts.done(replies) : replies.length >= opts.expect) return;
      }
    })();
    await Promise.race([enough, timeout]);
    clearTimeout(timer);
    return replies.slice();
  }

  async ping(): Promise<void> {}

  async request<TReply>(subject: string, payload: unknown, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<TReply> {
    const handlers = this.#handlers.get(subject);
    if (!handlers || handlers.length === 0) {
      throw new BusRequestError('PORTCULLIS_BUS_NO_RESPONDER', `no service answers ${subject}`);
    }
    const handler = handlers[this.#turn++ % handlers.length] as RequestHandler;
    const wire = JSON.parse(JSON.stringify(payload ?? null)) as unknown;
    type Reply = { ok: true; value: unknown } | { ok: false; error: WireError };
    const answered = (async (): Promise<Reply> => {
      try {
        return { ok: true, value: await handler(wire) };
      } catch (err) {
        return { ok: false, error: toWireError(err) };
      }
    })();
    // As on NATS: a handler that does not answer in time leaves the requester with a timeout, not a hang.
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new BusRequestError('PORTCULLIS_BUS_TIMEOUT', `${subject} did not answer within ${timeoutMs} ms`, { statusCode: 504 })),
        timeoutMs,
      );
    });
    const reply = await Promise.race([answered, timedOut]).finally(() => clearTimeout(timer));
    const back = JSON.parse(JSON.stringify(reply)) as typeof reply;
    if (!back.ok) throw fromWireError(back.error, subject);
    return back.value as TReply;
  }

  serve(subject: string, handler: RequestHandler): Subscription {
    const list = this.#handlers.get(subject) ?? [];
    list.push(handler);
    this.#handlers.set(subject, list);
    return {
      close: async () => {
        const current = this.#handlers.get(subject) ?? [];
        this.#handlers.set(
          subject,
          current.filter((h) => h !== handler),
        );
      },
    };
  }
}

/** Creates the embedded bus used when the config has no `cluster:` block. */
export function createMemoryBus(): Bus {
  return { log: new MemoryEventLog(), rpc: new MemoryRequestBus(), close: async () => {} };
}
