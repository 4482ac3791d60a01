// The sign-out guarantee across replicas: gateway presence, a barrier each gateway answers once it
// has applied a revocation, and the lease that keeps a silently partitioned gateway from trusting its cache.
import type { RequestBus, Subscription } from '@portcullis/bus';
import type { CachedSessionReader } from './session-cache.ts';

/** NATS subjects of the barrier protocol (broadcast: every gateway receives each message). */
export const BARRIER_SUBJECTS = {
  heartbeat: 'portcullis.gateway.heartbeat',
  barrier: 'portcullis.gateway.barrier',
} as const;

const HEARTBEAT_INTERVAL_MS = 1000;
/**
 * A gateway not heard from for this long plus the propagation bound is no longer waited for: its
 * lease (the bound, from its last round trip to the bus) has expired by then. The bound counts too,
 * since it may be configured far longer than this TTL.
 */
const PEER_TTL_MS = 3000;
/** The largest propagation bound the configuration allows: peers are forgotten only past any TTL. */
const MAX_BOUND_MS = 60_000;

interface BarrierAck {
  id: string;
  applied: boolean;
}

/**
 * How long a presence list must have listened before it knows every live gateway: each announces
 * itself every second, and a list younger than that may miss one (a gateway just started, or `sessions
 * revoke`, would otherwise wait only for the gateways it happened to hear).
 */
export const PRESENCE_WARMUP_MS = HEARTBEAT_INTERVAL_MS + 200;

/** Tracks which gateways are alive, from their heartbeats. */
export class PresenceTracker {
  readonly #peers = new Map<string, number>();
  #sub: Subscription | undefined;
  #startedAt = Number.POSITIVE_INFINITY;
  readonly #warmupMs: number;

  constructor(
    private readonly rpc: RequestBus,
    opts: { warmupMs?: number } = {},
  ) {
    this.#warmupMs = opts.warmupMs ?? PRESENCE_WARMUP_MS;
  }

  /** True once the list has listened long enough to have heard every live gateway. */
  complete(): boolean {
    return performance.now() - this.#startedAt >= this.#warmupMs;
  }

  start(): void {
    this.#startedAt = performance.now();
    this.#sub = this.rpc.listen(BARRIER_SUBJECTS.heartbeat, async (payload) => {
      const id = (payload as { id?: unknown })?.id;
      if (typeof id === 'string') this.#peers.set(id, Date.now());
      return undefined;
    });
  }

  /** Gateways heard from within the peer TTL plus `boundMs` (whose lease may still hold). */
  alive(now = Date.now(), boundMs = 0): string[] {
    const out: string[] = [];
    for (const [id, seen] of this.#peers) {
      if (now - seen <= PEER_TTL_MS + boundMs) out.push(id);
      else if (now - seen > PEER_TTL_MS + MAX_BOUND_MS) this.#peers.delete(id);
    }
    return out;
  }

  async stop(): Promise<void> {
    await this.#sub?.close();
  }
}

/**
 * Asks every live gateway to confirm it applied `seq`; true when all known gateways acknowledged in
 * time. A gateway that cannot apply it within the bound stops trusting its cache by itself.
 */
export async function collectRevocationAcks(rpc: RequestBus, presence: PresenceTracker, seq: number, timeoutMs: number): Promise<boolean> {
  // A list that has not heard every gateway yet cannot say who is missing: collect for the whole
  // bound (every gateway that hears the barrier applies it or distrusts its cache by then).
  const complete = presence.complete();
  const expected = presence.alive(Date.now(), timeoutMs);
  if (complete && expected.length === 0) return true;
  const ok = new Set<string>();
  // Until every expected gateway acknowledged: a gateway that joined since (or whose heartbeat was
  // late) also answers, and must not stand in for one that is still applying the sign-out.
  const allAcked = (acks: readonly BarrierAck[]) => {
    for (const a of acks) if (a.applied) ok.add(a.id);
    return complete && expected.every((id) => ok.has(id));
  };
  const acks = await rpc.gather<BarrierAck>(BARRIER_SUBJECTS.barrier, { seq }, { expect: expected.length, timeoutMs, done: allAcked });
  if (allAcked(acks)) return true;
  // Warmed up meanwhile: propagated if every gateway the list knows now acknowledged.
  return !complete && presence.complete() && presence.alive(Date.now(), timeoutMs).every((id) => ok.has(id));
}

/** A gateway's side of the protocol: heartbeats, barrier answers and the lease renewal loop. */
export class GatewayBarrierMember {
  readonly #subs: Subscription[] = [];
  #timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly opts: {
      id: string;
      rpc: RequestBus;
      cache: CachedSessionReader;
      /** The propagation bound (config outpost.signout_propagation_timeout_ms). */
      boundMs: number;
      /** Sampled every lease tick: whether the cache is trusted now (lease and log), and its size. */
      onTick?: (trusted: boolean, entries: number) => void;
      /** The cache's usability changed (lease lapsed or renewed, distrust or recovery). */
      onTrustedChange?: (trusted: boolean) => void;
    },
  ) {}

  start(): void {
    const { rpc, cache, id, boundMs } = this.opts;
    this.#subs.push(
      rpc.listen(BARRIER_SUBJECTS.barrier, async (payload) => {
        const seq = Number((payload as { seq?: unknown })?.seq);
        if (!Number.isSafeInteger(seq) || seq < 1) return { id, applied: false };
        // Answer within half the bound so the collector hears us before its own bound.
        const applied = await cache.waitLocalApplied(seq, boundMs / 2);
        if (!applied) cache.distrustUntil(seq, `sign-out barrier at ${seq} not met in time`);
        return { id, applied: applied || !cache.trusted } satisfies BarrierAck;
      }),
    );
    const beat = () => rpc.publish(BARRIER_SUBJECTS.heartbeat, { id });
    beat();
    // The lease: as long as the bound, renewed every fifth of it by a round trip to the bus. A sign-out
    // waits the full bound for a gateway that does not answer, so by its response a gateway cut off
    // without noticing has passed its lease and reads the projection (which the sign-out waited for).
    let wasTrusted = cache.trusted;
    const renew = () => {
      // Monotonic, as the cache's lease: a wall clock stepped back must not stretch it.
      const sent = performance.now();
      rpc.ping().then(
        () => cache.renewLease(sent + boundMs),
        () => {},
      );
      const trusted = cache.trusted;
      this.opts.onTick?.(trusted, cache.size);
      if (trusted !== wasTrusted) {
        wasTrusted = trusted;
        this.opts.onTrustedChange?.(trusted);
      }
    };
    cache.renewLease(performance.now() + boundMs);
    for (const [fn, ms] of [
      [beat, HEARTBEAT_INTERVAL_MS],
      [renew, Math.max(10, boundMs / 5)],
    ] as const) {
      const t = setInterval(fn, ms);
      t.unref();
      this.#timers.push(t);
    }
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    await Promise.all(this.#subs.map((s) => s.close()));
  }
}
