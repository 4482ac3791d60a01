// Sessions for the scenarios, started by appending SessionStarted straight into the NATS log (no IdP login), with signed cookies.
import { randomBytes } from 'node:crypto';
import { type SessionStartedData, createEvent } from '@portcullis/events';
import { sessionCookieName, signSessionCookie } from '@portcullis/protocol';
import type { Environment } from './environment.ts';

/** A session in the log and the cookie that carries it. */
export interface BenchSession {
  sessionId: string;
  sub: string;
  seq: number;
  /** `name=value` for the provider the session belongs to. */
  cookie: string;
}

const b64 = (bytes: number) => randomBytes(bytes).toString('base64url');

/**
 * A SessionStarted payload shaped like one from the testkit IdP: an opaque access token (43
 * characters, as oidc-provider issues by default), an RS256 ID token of ~850 characters, and the
 * claims of a user with a few groups.
 */
export function sessionData(opts: { provider: string; issuer: string; sub: string; sessionId?: string; lifetimeMs?: number }): SessionStartedData {
  const now = Date.now();
  const name = `user ${opts.sub}`;
  return {
    sessionId: opts.sessionId ?? `bench${b64(18)}`,
    provider: opts.provider,
    issuer: opts.issuer,
    sub: opts.sub,
    sid: b64(16),
    claims: {
      sub: opts.sub,
      email: `${opts.sub}@example.com`,
      email_verified: true,
      name,
      preferred_username: opts.sub,
      groups: ['users', 'staff', 'engineering'],
    },
    accessToken: b64(32),
    idToken: `eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjEifQ.${b64(300)}.${b64(256)}`,
    jwksUri: `${opts.issuer.replace(/\/$/, '')}/jwks`,
    createdAt: now,
    expiresAt: now + (opts.lifetimeMs ?? 3_600_000),
  };
}

/** The cookie header value (`name=value`) of a session for provider `providerName`. */
export function cookieFor(env: Environment, providerName: string, sessionId: string, seq: number): string {
  const p = env.config.providers.find((x) => x.name === providerName)!;
  return `${sessionCookieName(p.client_id)}=${signSessionCookie(p.cookie_secret, { sessionId, seq })}`;
}

/**
 * Appends one SessionStarted per sub (`concurrency` appends in flight) and waits until the shared
 * projection applied them all; sessions last `lifetimeMs` (default 1 h). Returns the sessions and the
 * append rate (events/s).
 */
export async function appendSessions(
  env: Environment,
  providerName: string,
  subs: string[],
  concurrency = 64,
  lifetimeMs?: number,
): Promise<{ sessions: BenchSession[]; appendsPerSecond: number; projectedAfterMs: number }> {
  const sessions: BenchSession[] = new Array(subs.length);
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, subs.length) }, async () => {
      while (next < subs.length) {
        const i = next++;
        const data = sessionData({ provider: providerName, issuer: env.idp.issuer, sub: subs[i]!, ...(lifetimeMs ? { lifetimeMs } : {}) });
        const seq = await env.bus.log.append(createEvent('SessionStarted', data));
        sessions[i] = { sessionId: data.sessionId, sub: data.sub, seq, cookie: cookieFor(env, providerName, data.sessionId, seq) };
      }
    }),
  );
  const appended = performance.now();
  const last = Math.max(...sessions.map((s) => s.seq));
  if (!(await env.store.waitForApplied(last, 120_000))) throw new Error(`the projection did not apply seq ${last} within 120 s`);
  return {
    sessions,
    appendsPerSecond: subs.length / ((appended - started) / 1000),
    projectedAfterMs: performance.now() - started,
  };
}
