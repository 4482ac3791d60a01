// Traffic for the cluster fault tests: users, logins, cookie probes, sign-outs and a bounded hammer that records every answer.
import { type Browser, type IdpUser, loginThroughIdp } from '@portcullis/testkit';
import type { Cluster } from './cluster-harness.ts';

/** `count` IdP users named `<prefix>01`, `<prefix>02`, ... with password `<name>-password`. */
export function makeUsers(count: number, prefix = 'user'): IdpUser[] {
  return Array.from({ length: count }, (_, i) => {
    const username = `${prefix}${String(i + 1).padStart(2, '0')}`;
    return { username, password: `${username}-password`, email: `${username}@example.com`, name: username, groups: ['users'] };
  });
}

/** A logged-in Portcullis session: the user and the cookie header that carries it. */
export interface LoggedIn {
  username: string;
  /** `name=value` pairs the application URL gets: sent explicitly, so a sign-out that clears a jar cannot hide it. */
  cookie: string;
}

/** Logs `user` in through gateway `gw` with a fresh cookie jar; throws unless the session is accepted there. */
export async function loginVia(c: Cluster, gw: number, user: { username: string; password: string }): Promise<LoggedIn> {
  const b = c.browserOn(gw, c.newJar());
  try {
    const done = await loginThroughIdp(b, `${c.app}/`, user);
    if (done.finalResponse.status !== 200) {
      throw new Error(`login of ${user.username} via gateway ${gw} ended with ${done.finalResponse.status} at ${done.finalResponse.url}`);
    }
    const cookie = b
      .cookies(c.app)
      .map((k) => `${k.name}=${k.value}`)
      .join('; ');
    return { username: user.username, cookie };
  } finally {
    await b.close();
  }
}

/** What one request got: an HTTP status, or the connection was refused / broken. */
export type Outcome = number | 'refused' | 'error';

/** One browser per gateway whose own jar is emptied before every request: only the cookie passed is sent. */
export class GatewayClients {
  readonly #browsers: Browser[];

  constructor(private readonly c: Cluster) {
    this.#browsers = c.gateways().map((_, i) => c.browserOn(i, c.newJar()));
  }

  /** GET `path` of the app through gateway `gw` with `cookie`; never throws. */
  async get(gw: number, cookie: string, path = '/'): Promise<Outcome> {
    const r = await this.send(gw, cookie, path);
    return typeof r === 'string' ? r : r.status;
  }

  /** The sign-out endpoint through gateway `gw` with `cookie`. */
  async signOut(gw: number, cookie: string): Promise<Outcome> {
    return this.get(gw, cookie, '/outpost.goauthentik.io/sign_out');
  }

  async send(gw: number, cookie: string, path: string): Promise<{ status: number; body: string } | 'refused' | 'error'> {
    const b = this.#browsers[gw]!;
    b.clearCookies();
    try {
      const r = await b.request(`${this.c.app}${path}`, { headers: { cookie } });
      return { status: r.status, body: r.body };
    } catch (err) {
      const code = (err as { code?: string; cause?: { code?: string } }).code ?? (err as { cause?: { code?: string } }).cause?.code;
      return code === 'ECONNREFUSED' ? 'refused' : 'error';
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.#browsers.map((b) => b.close()));
  }
}

/** One hammer request: which gateway and session, when it was sent and answered (performance.now()), and what it got. */
export interface Probe {
  gw: number;
  key: string;
  sentAt: number;
  doneAt: number;
  outcome: Outcome;
}

/** Options of {@link startHammer}. */
export interface HammerOptions {
  /** Gateways to hit (indexes). */
  gateways: number[];
  /** Sessions to send, by key. */
  targets: Array<{ key: string; cookie: string }>;
  /** Concurrent loops per gateway (default 2). */
  loopsPerGateway?: number;
  /** Pause between a loop's requests (default 10 ms): 2 cores are shared by the whole cluster. */
  pauseMs?: number;
  /** Hard bounds: the hammer stops by itself after this many requests in all or this long. */
  maxRequests: number;
  maxMs: number;
}

/** A running hammer: every answer is recorded until `stop()` (or its bounds). */
export interface Hammer {
  probes: Probe[];
  stop(): Promise<Probe[]>;
}

/**
 * Sends the targets' cookies to the gateways in round-robin loops and records every outcome, so a
 * test can check afterwards what each gateway answered for each session at any instant.
 */
export function startHammer(clients: GatewayClients, opts: HammerOptions): Hammer {
  const probes: Probe[] = [];
  const deadline = performance.now() + opts.maxMs;
  let stopped = false;
  const loops = opts.gateways.flatMap((gw) =>
    Array.from({ length: opts.loopsPerGateway ?? 2 }, async (_, loop) => {
      for (let i = loop; !stopped && probes.length < opts.maxRequests && performance.now() < deadline; i += opts.loopsPerGateway ?? 2) {
        const target = opts.targets[i % opts.targets.length]!;
        const sentAt = performance.now();
        const outcome = await clients.get(gw, target.cookie);
        probes.push({ gw, key: target.key, sentAt, doneAt: performance.now(), outcome });
        // A refused connection comes back at once: back off so a restarting gateway is not spun on.
        await new Promise((r) => setTimeout(r, typeof outcome === 'number' ? (opts.pauseMs ?? 10) : 50));
      }
    }),
  );
  return {
    probes,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return probes;
    },
  };
}

/** Counts of outcomes, e.g. `{ 200: 41, 302: 7, refused: 2 }`, for messages. */
export function tally(probes: readonly Probe[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of probes) out[String(p.outcome)] = (out[String(p.outcome)] ?? 0) + 1;
  return out;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
