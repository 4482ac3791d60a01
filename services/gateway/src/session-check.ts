// Cookie → signature → session store → live session: the authentication half of the hot path.
import {
  type IdentityClaims,
  PortcullisError,
  type SessionCookieValue,
  buildIdentityHeaders,
  encodeHeaderValueForWire,
  readCookie,
  verifySessionCookie,
} from '@portcullis/protocol';
import type { SessionReader, SessionRecord } from '@portcullis/store';
import type { ProviderRuntime } from './provider-runtime.ts';
import { HeaderBlock } from './upstream-h1.ts';

/** Outcome of checking a request's session cookie. */
export interface SessionCheck {
  session: SessionRecord | null;
  /** A cookie was sent but is malformed, forged, expired, revoked or for another provider: delete it. */
  staleCookie: boolean;
  /** The session came from the request's Authorization header (machine to machine), not a cookie. */
  viaHeader?: boolean;
}

const NO_COOKIE: SessionCheck = { session: null, staleCookie: false };
const STALE: SessionCheck = { session: null, staleCookie: true };

/**
 * A cookie naming a session the log holds but the projection has not applied yet, even after the
 * read-your-writes wait (the session services are behind, or rebuilding a projection Redis lost):
 * whether the session is live cannot be told yet. The request fails closed (503) and the cookie is
 * kept: "no such session" would sign out every user whose session is merely not projected yet.
 */
export class SessionProjectionBehindError extends PortcullisError {
  constructor(
    /** The projection's applied sequence when the request gave up. */
    readonly applied: number,
    /** The sequence the cookie names (its session's SessionStarted). */
    readonly cookieSeq: number,
  ) {
    super('PORTCULLIS_GATEWAY_PROJECTION_BEHIND', `the session projection has applied the log up to #${applied}, the cookie names #${cookieSeq}: session not checked`, {
      statusCode: 503,
    });
    this.name = 'SessionProjectionBehindError';
  }
}

/** Verified cookie values remembered per provider. */
const VERIFIED_COOKIES_MAX = 50_000;

/** How long a request waits for the projection to reach the version its cookie was written at. */
const READ_YOUR_WRITES_WAIT_MS = 2000;

/**
 * Checks the provider's session cookie (HOT). Synchronous when the store knows the session from
 * memory (a gateway cache hit); otherwise a Promise that reads the store, and for a cookie written at
 * a newer log position than this reader has applied, waits for it (read-your-writes without sticky
 * routing). Store errors propagate (thrown or rejected), as does a cookie the projection has still not
 * reached after the wait although the log holds it ({@link SessionProjectionBehindError}): the caller
 * fails closed and keeps the cookie.
 */
export function checkSession(store: SessionReader, p: ProviderRuntime, cookieHeader: string | undefined): SessionCheck | Promise<SessionCheck> {
  const raw = readCookie(cookieHeader, p.sessionCookie);
  if (raw === undefined) return NO_COOKIE;
  let value = p.verifiedCookies.get(raw);
  if (!value) {
    const verified = verifySessionCookie(p.config.cookie_secret, raw);
    if (!verified) return STALE;
    // Only good signatures are remembered, so forged cookies cannot fill the map; it is simply
    // cleared when full (a re-verification costs one HMAC).
    if (p.verifiedCookies.size >= VERIFIED_COOKIES_MAX) p.verifiedCookies.clear();
    p.verifiedCookies.set(raw, verified);
    value = verified;
  }
  const known = store.peekLiveSession?.(value.sessionId);
  if (known) return matchCookie(p, value, known);
  // Known dead (null) or unknown (undefined): the careful way, as getLiveSession would have answered.
  return readStore(store, p, value, known === null);
}

async function readStore(store: SessionReader, p: ProviderRuntime, value: SessionCookieValue, knownDead: boolean): Promise<SessionCheck> {
  let session = knownDead ? null : await store.getLiveSession(value.sessionId);
  if (!session && value.seq > (await store.appliedSeq())) {
    session = await awaitFreshSession(store, value);
    // A session this reader's memory knows dead is stale whatever the projection says.
    if (!session && !knownDead) session = await readUnprojected(store, value);
  }
  return matchCookie(p, value, session);
}

/**
 * After the wait, no source knew the session: the projection's answer once it has applied the
 * cookie's seq (perhaps just now), and none when the log does not hold that seq (a new stream: the
 * cookie is from an old one, and would otherwise be answered 503 forever). In between, throws
 * {@link SessionProjectionBehindError}. A reader that cannot ask the log answers none, as before.
 */
async function readUnprojected(store: SessionReader, value: SessionCookieValue): Promise<SessionRecord | null> {
  if (!store.logHolds) return null;
  const applied = await store.appliedSeq();
  if (applied >= value.seq) return store.getLiveSession(value.sessionId);
  if (!(await store.logHolds(value.seq))) return null;
  throw new SessionProjectionBehindError(applied, value.seq);
}

/**
 * A cookie newer than the projection: waits (bounded) for the projection to reach it, or, sooner,
 * for the reader's own memory to know the session at the cookie's version. A store error while the
 * memory could not answer propagates (the caller fails closed).
 */
function awaitFreshSession(store: SessionReader, value: SessionCookieValue): Promise<SessionRecord | null> {
  const projected = store.waitForApplied(value.seq, READ_YOUR_WRITES_WAIT_MS).then((applied) => (applied ? store.getLiveSession(value.sessionId) : null));
  if (!store.awaitKnownSession) return projected;
  const known = store.awaitKnownSession(value.sessionId, value.seq, READ_YOUR_WRITES_WAIT_MS).catch(() => undefined);
  // Whichever source finds the session first answers; when neither does, the projection's answer (or error) stands.
  return Promise.race([
    known.then((session) => session ?? projected),
    projected.then(
      (session) => session ?? known.then((k) => k ?? null),
      (err: unknown) =>
        known.then((k) => {
          if (k) return k;
          throw err;
        }),
    ),
  ]);
}

/**
 * The session a verified cookie names counts only for its provider, at the version the cookie was
 * written at, and while the provider still trusts the issuer that authenticated it (a reload that
 * changes `issuer` must not keep the old identity provider's users signed in).
 */
function matchCookie(p: ProviderRuntime, value: SessionCookieValue, session: SessionRecord | null): SessionCheck {
  if (!session || session.provider !== p.name || session.seq !== value.seq || session.issuer !== p.config.issuer) return STALE;
  return { session, staleCookie: false };
}

/** A session's identity headers in the shapes the gateway sends them, values encoded for the wire. */
export interface WireIdentityHeaders {
  /** For a forward-auth answer: names as authentik spells them. */
  answer: Array<[string, string]>;
  /** For a proxied request: lower-case names (the upstream request's header object). */
  upstream: Array<[string, string]>;
  /**
   * `upstream` checked and serialized once, for the relay; null when it names a header the gateway
   * sets per request (an `additionalHeaders` X-Forwarded-For, say), which then goes the per-header way.
   */
  upstreamBlock: HeaderBlock | null;
  /** The session's `ak_proxy.backend_override` as an origin (scheme + host), or null: where its requests go instead of internal_host. */
  backendOrigin: string | null;
  /** The session's `ak_proxy.host_header`, or null: the Host its requests carry upstream. */
  hostHeader: string | null;
}

/** Headers the gateway sets on every proxied request itself (the relay frames with the rest of node's forbidden ones). */
const PER_REQUEST_NAMES = new Set(['host', 'x-forwarded-for', 'x-real-ip', 'x-forwarded-host', 'x-forwarded-proto']);

/** Scheme + host of a backend_override (authentik ignores its path); null when unusable. */
function backendOrigin(value: unknown): string | null {
  if (typeof value !== 'string' || value === '') return null;
  try {
    const u = new URL(value);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : null;
  } catch {
    return null;
  }
}

/**
 * Identity headers and upstream routing (backend override, Host) per session, computed and encoded
 * once per session record this process holds (HOT: nothing of the session is parsed per request).
 */
export class IdentityHeaderCache {
  readonly #cache = new WeakMap<SessionRecord, WireIdentityHeaders>();
  constructor(
    private readonly ctx: { outpostName: string; version: string },
    private readonly onWarnings: (session: SessionRecord, warnings: string[]) => void,
  ) {}

  /** The 12 X-authentik-* headers (+ additional and Basic) for `session` under provider `p`. Shared: never mutate. */
  get(p: ProviderRuntime, session: SessionRecord): WireIdentityHeaders {
    let headers = this.#cache.get(session);
    if (!headers) {
      const result = buildIdentityHeaders(session.claims as IdentityClaims, session.accessToken, {
        jwksUri: session.jwksUri,
        outpostName: this.ctx.outpostName,
        providerName: p.name,
        appSlug: p.config.application_slug,
        version: this.ctx.version,
        basicAuth: {
          enabled: p.config.basic_auth_enabled,
          userAttribute: p.config.basic_auth_user_attribute,
          passwordAttribute: p.config.basic_auth_password_attribute,
        },
      });
      if (result.warnings.length > 0) this.onWarnings(session, result.warnings);
      const answer = result.headers.map(([name, value]): [string, string] => [name, encodeHeaderValueForWire(value)]);
      const upstream = answer.map(([name, value]): [string, string] => [name.toLowerCase(), value]);
      const akProxy = (session.claims.ak_proxy ?? {}) as { backend_override?: unknown; host_header?: unknown };
      headers = {
        answer,
        upstream,
        upstreamBlock: upstream.some(([name]) => PER_REQUEST_NAMES.has(name)) ? null : new HeaderBlock(upstream),
        backendOrigin: backendOrigin(akProxy.backend_override),
        hostHeader: typeof akProxy.host_header === 'string' && akProxy.host_header !== '' ? akProxy.host_header : null,
      };
      this.#cache.set(session, headers);
    }
    return headers;
  }
}

/** Identity headers for a request with no session: every X-authentik-* present, user fields empty. */
export function anonymousIdentityHeaders(p: ProviderRuntime, ctx: { outpostName: string; version: string }): Array<[string, string]> {
  return buildIdentityHeaders({ sub: '' }, '', {
    jwksUri: '',
    outpostName: ctx.outpostName,
    providerName: p.name,
    appSlug: p.config.application_slug,
    version: ctx.version,
  }).headers;
}
