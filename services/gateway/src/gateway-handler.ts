// The gateway's decision for each request: outpost endpoints, forward auth, or proxy (framework-free).
import type { RequestBus } from '@portcullis/bus';
import type { PortcullisConfig } from '@portcullis/config';
import {
  AUTH_SUBJECTS,
  type AuthReply,
  type CallbackRequest,
  HEADER_AUTH_UNAVAILABLE,
  type HeaderAuthReply,
  type SignOutRequest,
  type StartLoginRequest,
} from '@portcullis/events';
import {
  type CidrMatcher,
  type ForwardFlavour,
  buildCidrMatcher,
  buildHostRouter,
  encodeHeaderValueForWire,
  headerAuthSessionId,
  matchesSkipRule,
  type OriginalRequest,
  normalizeCookieDomain,
  normalizePath,
  reconstructOriginalRequest,
  resolveClientAddress,
  serializeDeletionCookie,
  skipSubject,
  validateRedirect,
} from '@portcullis/protocol';
import type { SessionReader, SessionRecord } from '@portcullis/store';
import { tracingEnabled, withSpan } from '@portcullis/telemetry';
import type { ActivityReporter } from './activity-reporter.ts';
import {
  type Answer,
  JSON_TYPE,
  type ProxyAnswer,
  type RespondAnswer,
  fromAuthReply,
  noProviderAnswer,
  pageAnswer,
  redirectAnswer,
  textAnswer,
} from './answers.ts';
import { type ProviderRuntime, compileProviders } from './provider-runtime.ts';
import {
  CALLBACK_FLAG,
  type IncomingRequest,
  LOGOUT_FLAG,
  OUTPOST_PREFIX,
  clientFacingHost,
  headerValue,
  queryFlag,
  splitTarget,
} from './request-context.ts';
import { IdentityHeaderCache, type SessionCheck, SessionProjectionBehindError, anonymousIdentityHeaders, checkSession } from './session-check.ts';

/** What the handler needs; all of it is injected so tests and the cluster wiring can swap adapters. */
export interface GatewayHandlerDeps {
  config: PortcullisConfig;
  rpc: RequestBus;
  store: SessionReader;
  /** `portcullis/<version>`, sent as X-authentik-meta-version. */
  version: string;
  /**
   * Waits for the revocation at `seq` to hold: `propagated` — the shared projection applied it and
   * every live gateway acknowledged; `bounded` — the projection applied it, some gateway did not
   * answer in time (it reads the projection by then); `unprojected` — the projection did not apply it
   * in time, so a gateway reading it could still accept the session: the caller must not claim success.
   */
  waitForRevocation: (seq: number) => Promise<RevocationOutcome>;
  log: {
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
  };
  /**
   * Reports session uses for idle timeouts: touched for every request accepted with a session, also
   * when its provider has no `idle_timeout` (yet): an idle timeout turned on later must judge sessions
   * by their real last use, not by their login. Each handler built with it reconfigures it for its config (a reload
   * recomputes the report interval). Its start/stop belong to whoever owns the gateway. Optional:
   * without it, no activity is reported (idle sessions are then ended on their last recorded use).
   */
  activity?: Pick<ActivityReporter, 'touch' | 'configure'>;
  /** Observers for metrics; all optional. */
  observe?: {
    decision?(provider: string, outcome: string): void;
    login?(provider: string, result: string): void;
    signOut?(provider: string, result: string, propagationSeconds: number | null): void;
  };
}

/** How far a revocation got before the answer (see {@link GatewayHandlerDeps.waitForRevocation}). */
export type RevocationOutcome = 'propagated' | 'bounded' | 'unprojected';

/**
 * Request headers that never cross a proxy (RFC 9110 §7.6.1) plus the ones the gateway sets itself.
 * `expect`: node already answered `100 Continue` to the client, and undici refuses the header (502).
 */
const NOT_FORWARDED = new Set([
  'connection',
  'expect',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
]);

/** `Connection` values (as HTTP/1.1 clients send them) whose tokens are all in {@link NOT_FORWARDED}. */
const CONNECTION_NAMING_ONLY_HOP_BY_HOP = new Set(['keep-alive', 'Keep-Alive', 'upgrade', 'Upgrade']);

const AUTH_TIMEOUT_MS = 15_000;
/** How long a header-authenticated request waits for its new session to be projected. */
const HEADER_AUTH_WAIT_MS = 2000;
/** Logout tokens are a few KiB; anything much larger is not one. */
const BACKCHANNEL_BODY_LIMIT = 64 * 1024;

/**
 * Retry-After (seconds) of the 503 for a sign-out or back-channel logout that is recorded but not
 * confirmed everywhere in time: a retry is safe (a redelivered logout token is answered like the
 * first) and waits for the same revocation again, so it may come at once.
 */
const UNCONFIRMED_REVOCATION_RETRY_AFTER_S = 1;
/**
 * The Retry-After of a 503 for a dependency that is not answering (the auth service, the session
 * store): a hint for IdPs retrying a back-channel logout and for API clients; browsers ignore it.
 */
const OUTAGE_RETRY_AFTER: Array<[string, string]> = [['retry-after', '5']];
/**
 * At most one log line per this interval (ms) for cookies the session projection has not reached: while
 * it is rebuilt or catches up, every such request answers 503, and a line each would flood the log.
 */
const PROJECTION_BEHIND_LOG_EVERY_MS = 30_000;
const ENVOY_PREFIX = 'auth/envoy';
const FORWARD_AUTH_PREFIX = `${OUTPOST_PREFIX}auth/`;

/** Builds the decision function for one config. */
export class GatewayHandler {
  readonly providers: ProviderRuntime[];
  readonly #deps: GatewayHandlerDeps;
  readonly #route: (host: string, scheme: 'http' | 'https') => number | undefined;
  readonly #trusted: CidrMatcher;
  /** `#trusted` as a function, made once (not a closure per proxied request). */
  readonly #isTrusted = (ip: string): boolean => this.#trusted.matches(ip);
  readonly #identity: IdentityHeaderCache;
  readonly #meta: { outpostName: string; version: string };
  readonly #anonymous = new Map<ProviderRuntime, Array<[string, string]>>();
  readonly #activity: Pick<ActivityReporter, 'touch'> | undefined;
  /** When the last "projection behind" line was logged (monotonic ms), and how many such 503s were answered since. */
  #behindLoggedAt = Number.NEGATIVE_INFINITY;
  #behindAnswered = 0;

  constructor(deps: GatewayHandlerDeps) {
    this.#deps = deps;
    this.providers = compileProviders(deps.config);
    this.#route = buildHostRouter(
      this.providers.map((p) => ({ mode: p.config.mode, externalHost: p.config.external_host, cookieDomain: p.config.cookie_domain })),
    );
    this.#trusted = buildCidrMatcher(deps.config.outpost.trusted_proxy_cidrs);
    this.#meta = { outpostName: deps.config.outpost.name, version: deps.version };
    this.#identity = new IdentityHeaderCache(this.#meta, (s, warnings) =>
      deps.log.warn({ provider: s.provider, session_seq: s.seq, warnings }, 'identity headers cleaned'),
    );
    this.#activity = deps.activity;
    // Last, so a config that fails to compile above leaves the reporter as it was.
    deps.activity?.configure(deps.config.providers);
  }

  /** Decides what to do with one request. Never throws: failures become 5xx answers, never 2xx. */
  async handle(req: IncomingRequest): Promise<Answer> {
    try {
      if (!tracingEnabled()) return await this.#dispatch(req);
      return await withSpan('gateway.decide', { attributes: { 'http.request.method': req.method } }, async (span) => {
        const answer = await this.#dispatch(req);
        span?.setAttribute('portcullis.answer', answer.kind === 'proxy' ? 'proxy' : String(answer.status));
        if (answer.metricHost) span?.setAttribute('server.address', answer.metricHost);
        return answer;
      });
    } catch (err) {
      return this.#failed(err);
    }
  }

  /**
   * {@link handle}, answered synchronously when nothing needs waiting for (HOT: no tracing, and the
   * session, if any, known from memory — a gateway cache hit); a Promise otherwise. Never throws or
   * rejects: failures become 5xx answers, never 2xx.
   */
  decide(req: IncomingRequest): Answer | Promise<Answer> {
    if (tracingEnabled()) return this.handle(req);
    try {
      const answer = this.#dispatch(req);
      return answer instanceof Promise ? answer.catch((err: unknown) => this.#failed(err)) : answer;
    } catch (err) {
      return this.#failed(err);
    }
  }

  #failed(err: unknown): RespondAnswer {
    this.#deps.log.error({ err }, 'request failed');
    return pageAnswer(500, 'Internal error', 'Portcullis could not handle this request. The error has been logged.');
  }

  /** Synchronous as far as it can go (see {@link decide}); a Promise from the first wait on. */
  #dispatch(req: IncomingRequest): Answer | Promise<Answer> {
    const { path, query } = splitTarget(req.url);
    if (path.startsWith('/outpost.goauthentik.io/ping')) return { kind: 'respond', status: 204, headers: [], body: '' };
    if (req.url.includes('#')) return textAnswer(400, 'bad request: "#" is not allowed in a request target');
    const trusted = this.#trusted.matches(req.peer);
    const { scheme, host } = clientFacingHost(req, trusted);
    const index = this.#route(host, scheme);
    if (index === undefined) return noProviderAnswer(host);
    const p = this.providers[index]!;
    const answer = this.#forProvider(p, req, path, query, trusted, scheme, host);
    if (answer instanceof Promise) return answer.then((a) => withMetricHost(a, p));
    return withMetricHost(answer, p);
  }

  #forProvider(
    p: ProviderRuntime,
    req: IncomingRequest,
    path: string,
    query: string,
    trusted: boolean,
    scheme: 'http' | 'https',
    host: string,
  ): Answer | Promise<Answer> {
    const rel = p.basePath !== '' && (path === p.basePath || path.startsWith(`${p.basePath}/`)) ? path.slice(p.basePath.length) || '/' : path;
    // authentik's per-application middleware: the callback and logout signatures work on any path.
    // On a forward-auth check (Envoy sends the original query along) the answer must not be a pass.
    const callback = queryFlag(query, CALLBACK_FLAG);
    if (callback || queryFlag(query, LOGOUT_FLAG)) {
      const answer = callback ? this.#callback(p, req, query) : this.#signOut(p, req);
      return p.config.mode !== 'proxy' && rel.startsWith(FORWARD_AUTH_PREFIX) ? neverAPass(answer) : answer;
    }

    if (rel.startsWith(OUTPOST_PREFIX)) {
      const sub = rel.slice(OUTPOST_PREFIX.length);
      if (sub === 'start') return this.#start(p, new URLSearchParams(query).get('rd') ?? undefined, [], host);
      if (sub === 'callback') return this.#callback(p, req, query);
      if (sub === 'sign_out') return this.#signOut(p, req);
      if (sub === 'backchannel-logout' && req.method === 'POST') return this.#backchannelLogout(p, req);
      if (p.config.mode !== 'proxy') {
        if (sub === 'auth/nginx' || sub === 'auth/traefik' || sub === 'auth/caddy') {
          return this.#forward(sub.slice(5) as ForwardFlavour, p, req, trusted, scheme, '');
        }
        if (sub === ENVOY_PREFIX || sub.startsWith(`${ENVOY_PREFIX}/`)) {
          const rest = rel.slice(OUTPOST_PREFIX.length + ENVOY_PREFIX.length) || '/';
          return this.#forward('envoy', p, req, trusted, scheme, query ? `${rest}?${query}` : rest);
        }
      }
    }
    if (p.config.mode !== 'proxy') return textAnswer(404, '404 page not found');
    return this.#proxy(p, req, path, query, trusted, scheme, host);
  }

  // ---- login and sign-out: the auth service does the OIDC work over the bus --------------------

  async #askAuth(subject: string, payload: StartLoginRequest | CallbackRequest | SignOutRequest): Promise<AuthReply | RespondAnswer> {
    try {
      return await this.#deps.rpc.request<AuthReply>(subject, payload, AUTH_TIMEOUT_MS);
    } catch (err) {
      this.#deps.log.error({ err, subject }, 'auth service unavailable');
      return pageAnswer(503, 'Login unavailable', 'The login service is not answering. Try again in a moment.', OUTAGE_RETRY_AFTER);
    }
  }

  /**
   * Starts a login: the auth service's answer sets the login-state cookie and sends the browser to
   * the IdP. A browser on `requestHost` that would not send that cookie back to the callback (on
   * external_host) is first sent to external_host's own /start: else the callback finds no state
   * and the login ends in "start again" (a fully qualified `app.company.`, another alias of the app).
   */
  async #start(p: ProviderRuntime, rd: string | undefined, extraCookies: readonly string[] = [], requestHost?: string): Promise<RespondAnswer> {
    if (requestHost !== undefined && !stateCookieReachesCallback(p, requestHost)) {
      const query = rd === undefined ? '' : `?rd=${encodeURIComponent(rd)}`;
      return redirectAnswer(`${p.externalOrigin}${p.basePath}/outpost.goauthentik.io/start${query}`, extraCookies);
    }
    const redirect = validateRedirect(rd, { mode: p.config.mode, externalHost: p.config.external_host, cookieDomain: p.config.cookie_domain });
    const reply = await this.#askAuth(AUTH_SUBJECTS.start, { provider: p.name, redirect });
    return 'kind' in reply ? reply : fromAuthReply(reply, extraCookies);
  }

  async #callback(p: ProviderRuntime, req: IncomingRequest, query: string): Promise<RespondAnswer> {
    const reply = await this.#askAuth(AUTH_SUBJECTS.callback, {
      provider: p.name,
      query,
      stateCookies: collectCookies(headerValue(req.headers, 'cookie'), p.stateCookiePrefix),
    });
    if ('kind' in reply) return reply;
    this.#deps.observe?.login?.(p.name, reply.status === 302 && reply.setCookies.length > 0 ? 'success' : `http_${reply.status}`);
    return fromAuthReply(reply);
  }

  async #signOut(p: ProviderRuntime, req: IncomingRequest): Promise<RespondAnswer> {
    let check: SessionCheck;
    try {
      check = await checkSession(this.#deps.store, p, headerValue(req.headers, 'cookie'));
    } catch (err) {
      if (err instanceof SessionProjectionBehindError) this.#projectionBehind(p, err);
      else this.#deps.log.error({ err, provider: p.name }, 'session store unavailable at sign-out');
      return pageAnswer(503, 'Sign-out unavailable', 'Sessions cannot be read right now, so sign-out could not be recorded. Try again.', OUTAGE_RETRY_AFTER);
    }
    const s = check.session;
    const reply = await this.#askAuth(AUTH_SUBJECTS.signOut, {
      provider: p.name,
      session: s ? { sessionId: s.sessionId, sub: s.sub, idToken: s.idToken } : null,
    });
    if ('kind' in reply) return reply;
    if (reply.revokedAtSeq !== undefined) {
      const failed = await this.#propagate(p, reply.revokedAtSeq);
      if (failed) return failed;
    } else {
      this.#deps.observe?.signOut?.(p.name, reply.status >= 500 ? 'failed' : 'no_session', null);
    }
    return fromAuthReply(reply);
  }

  /** OIDC Back-Channel Logout: the IdP posts a logout token; answered once the revocation holds everywhere. */
  async #backchannelLogout(p: ProviderRuntime, req: IncomingRequest): Promise<RespondAnswer> {
    const jsonError = (status: number, error: string, description: string, extra: Array<[string, string]> = []): RespondAnswer => ({
      kind: 'respond',
      status,
      headers: [['content-type', JSON_TYPE], ['cache-control', 'no-store'], ...extra],
      body: JSON.stringify({ error, error_description: description }),
    });
    let body: string;
    try {
      body = req.readBody ? await req.readBody(BACKCHANNEL_BODY_LIMIT) : '';
    } catch {
      return jsonError(400, 'invalid_request', `the request body is unreadable or larger than ${BACKCHANNEL_BODY_LIMIT} bytes`);
    }
    let reply: AuthReply;
    try {
      reply = await this.#deps.rpc.request<AuthReply>(
        AUTH_SUBJECTS.backchannelLogout,
        { provider: p.name, contentType: headerValue(req.headers, 'content-type') ?? '', body },
        AUTH_TIMEOUT_MS,
      );
    } catch (err) {
      this.#deps.log.error({ err }, 'auth service unavailable for back-channel logout');
      return jsonError(503, 'temporarily_unavailable', 'the login service is not answering; retry later', OUTAGE_RETRY_AFTER);
    }
    if (reply.revokedAtSeq !== undefined) {
      const failed = await this.#propagate(p, reply.revokedAtSeq);
      if (failed) {
        return jsonError(503, 'temporarily_unavailable', 'the logout was recorded but is not confirmed everywhere yet; retry', [
          ['retry-after', String(UNCONFIRMED_REVOCATION_RETRY_AFTER_S)],
        ]);
      }
    }
    const answer = fromAuthReply(reply);
    if (!answer.headers.some(([k]) => k === 'cache-control')) answer.headers.push(['cache-control', 'no-store']);
    return answer;
  }

  /**
   * Waits for a revocation to hold on every live gateway and records how long it took. null when it
   * holds; otherwise the answer to give instead of a success (the event is recorded, a retry is safe).
   */
  async #propagate(p: ProviderRuntime, seq: number): Promise<RespondAnswer | null> {
    const started = process.hrtime.bigint();
    const outcome = await withSpan('gateway.wait_revocation', { attributes: { 'portcullis.seq': seq } }, () => this.#deps.waitForRevocation(seq));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.#deps.observe?.signOut?.(p.name, outcome, seconds);
    if (outcome === 'propagated') return null;
    if (outcome === 'bounded') {
      this.#deps.log.warn({ provider: p.name, seq }, 'revocation propagation hit its bound; laggard gateways read the projection');
      return null;
    }
    this.#deps.log.error({ provider: p.name, seq }, 'revocation recorded but not yet projected; answering 503 so no one is told it holds');
    return pageAnswer(
      503,
      'Sign-out not confirmed',
      'Your sign-out was recorded but could not be confirmed on every server yet. Try again in a moment.',
      [['retry-after', String(UNCONFIRMED_REVOCATION_RETRY_AFTER_S)]],
    );
  }

  // ---- forward auth ------------------------------------------------------------------------------

  #forward(
    flavour: ForwardFlavour,
    p: ProviderRuntime,
    req: IncomingRequest,
    trusted: boolean,
    scheme: 'http' | 'https',
    envoyPath: string,
  ): RespondAnswer | Promise<RespondAnswer> {
    if (flavour === 'nginx' && trusted && originalHeadersDisagree(req)) {
      // nginx passes client headers to the auth subrequest: a config that sets only X-Original-URL
      // lets a client supply its own X-Original-URI (which wins) and pick the path that is judged.
      this.#deps.log.warn(
        { provider: p.name, peer: req.peer },
        'X-Original-URI and X-Original-URL disagree (in path, or X-Original-URL names another host:port than X-Forwarded-Host/Host): refusing. Set both in nginx (proxy_set_header X-Original-URI $request_uri) so a client cannot supply one, and X-Forwarded-Host to $http_host, the host:port X-Original-URL names',
      );
      return textAnswer(500, 'configuration error');
    }
    const original = reconstructOriginalRequest(flavour, {
      // X-Forwarded-* and X-Original-* count only from trusted peers.
      headers: trusted ? req.headers : {},
      requestHost: headerValue(req.headers, 'host'),
      requestPath: envoyPath,
      requestScheme: scheme,
    });
    if (!original) {
      this.#deps.log.warn(
        { provider: p.name, flavour, peer: req.peer, trusted },
        trusted
          ? `forward auth (${flavour}) without the headers that carry the original URL: fix the front proxy config`
          : `forward auth (${flavour}) from ${req.peer}, which is not in outpost.trusted_proxy_cidrs: add the front proxy's address there`,
      );
      return textAnswer(500, 'configuration error');
    }
    // The provider was picked by Host / X-Forwarded-Host, which a front proxy may pass on from the
    // client (nginx with authentik's snippet sets only Host and X-Original-URL): the URL being
    // checked must be one of this provider's, or another provider's cookie would decide for it.
    if (this.#route(original.host, original.scheme) !== this.providers.indexOf(p)) {
      this.#deps.log.warn(
        { provider: p.name, flavour, peer: req.peer, host: original.host },
        'forward auth for a URL whose host is not this provider\'s (the request\'s Host / X-Forwarded-Host name another): refusing. Make the front proxy set X-Forwarded-Host (or Host) to the original host',
      );
      return textAnswer(500, 'configuration error');
    }
    if (flavour !== 'nginx') {
      const originalQuery = original.url.search.slice(1);
      if (queryFlag(originalQuery, CALLBACK_FLAG)) return neverAPass(this.#callback(p, req, originalQuery));
      if (queryFlag(originalQuery, LOGOUT_FLAG)) return neverAPass(this.#signOut(p, req));
    }
    const check = this.#checkOrFail(p, req);
    if (check instanceof Promise) return check.then((c) => this.#forwardChecked(flavour, p, original, c));
    return this.#forwardChecked(flavour, p, original, check);
  }

  /** Forward auth once the session is checked. */
  #forwardChecked(
    flavour: ForwardFlavour,
    p: ProviderRuntime,
    original: OriginalRequest,
    check: SessionCheck | RespondAnswer,
  ): RespondAnswer | Promise<RespondAnswer> {
    if ('kind' in check) return check;
    if (check.session) {
      this.#deps.observe?.decision?.(p.name, 'authenticated');
      // Shared, pre-encoded per session record: the writer only reads answer headers.
      return { kind: 'respond', status: 200, headers: this.#identity.get(p, check.session).answer, body: '', sharedHeaders: true };
    }
    const deletion = check.staleCookie ? [this.#deletionCookie(p)] : [];
    // The path as sent (the upstream gets it), not the parsed URL's: that has dot segments resolved.
    const norm = normalizePath(original.rawPath);
    // Scheme and host as the parsed URL has them, without parsing it (HOT for allow-listed assets).
    if (norm?.skipEligible && p.hasSkipRules && matchesSkipRule(p.skipRules, skipSubject(p.config.mode, { protocol: original.scheme, host: original.host, pathname: norm.path }))) {
      this.#deps.observe?.decision?.(p.name, 'allowlisted');
      // Without a cookie to delete, the provider's one anonymous list: the writer keeps its wire form.
      if (deletion.length === 0) return { kind: 'respond', status: 200, headers: this.#anonymousHeaders(p), body: '', sharedHeaders: true };
      return {
        kind: 'respond',
        status: 200,
        headers: [...this.#anonymousHeaders(p), ...deletion.map((c): [string, string] => ['set-cookie', c])],
        body: '',
      };
    }
    this.#deps.observe?.decision?.(p.name, 'unauthenticated');
    if (flavour === 'nginx') return textAnswer(401, 'unauthorized request', deletion.map((c) => ['set-cookie', c]));
    return this.#start(p, original.url.href, deletion, original.host);
  }

  // ---- proxy mode ---------------------------------------------------------------------------------

  #proxy(
    p: ProviderRuntime,
    req: IncomingRequest,
    rawPath: string,
    query: string,
    trusted: boolean,
    scheme: 'http' | 'https',
    host: string,
  ): Answer | Promise<Answer> {
    const canonical = canonicalRawPath(rawPath);
    const norm = canonical === null ? null : normalizePath(canonical);
    if (canonical === null || norm === null) return textAnswer(400, 'bad request: invalid path');
    const target = query ? `${canonical}?${query}` : canonical;
    const check = this.#checkOrFail(p, req);
    if (check instanceof Promise) return check.then((c) => this.#proxyChecked(p, req, target, norm, trusted, scheme, host, c));
    return this.#proxyChecked(p, req, target, norm, trusted, scheme, host, check);
  }

  /** Proxy mode once the session is checked. */
  #proxyChecked(
    p: ProviderRuntime,
    req: IncomingRequest,
    target: string,
    norm: NonNullable<ReturnType<typeof normalizePath>>,
    trusted: boolean,
    scheme: 'http' | 'https',
    host: string,
    check: SessionCheck | RespondAnswer,
  ): Answer {
    if ('kind' in check) return check;
    if (check.session) {
      this.#deps.observe?.decision?.(p.name, 'authenticated');
      return this.#proxyAnswer(p, req, target, trusted, scheme, host, check.session, check.viaHeader === true);
    }
    if (norm.skipEligible && p.hasSkipRules && matchesSkipRule(p.skipRules, skipSubject(p.config.mode, { protocol: `${scheme}:`, host, pathname: norm.path }))) {
      this.#deps.observe?.decision?.(p.name, 'allowlisted');
      return this.#proxyAnswer(p, req, target, trusted, scheme, host, null);
    }
    this.#deps.observe?.decision?.(p.name, 'unauthenticated');
    const deletion = check.staleCookie ? [this.#deletionCookie(p)] : [];
    if (p.config.intercept_header_auth && headerValue(req.headers, 'authorization')) {
      return pageAnswer(
        401,
        'Unauthenticated',
        'This request carries an Authorization header, so it is not redirected to the login page.',
        deletion.map((c) => ['set-cookie', c]),
      );
    }
    // The original URL keeps its query (authentik drops it).
    const rd = `${p.externalOrigin}${req.url}`;
    return redirectAnswer(`${p.externalOrigin}${p.basePath}/outpost.goauthentik.io/start?rd=${encodeURIComponent(rd)}`, deletion);
  }

  #proxyAnswer(
    p: ProviderRuntime,
    req: IncomingRequest,
    target: string,
    trusted: boolean,
    scheme: 'http' | 'https',
    host: string,
    session: SessionRecord | null,
    viaHeader = false,
  ): ProxyAnswer {
    const headers: Record<string, string | string[]> = {};
    const identity = session ? this.#identity.get(p, session) : null;
    // The session's identity headers replace any the client sent under the same names.
    const replaced = identity?.upstreamBlock?.names;
    const connectionTokens = connectionHeaderTokens(req.headers.connection);
    for (const name in req.headers) {
      const value = req.headers[name];
      if (value === undefined || NOT_FORWARDED.has(name) || p.stripHeader(name)) continue;
      // A credential that authenticated the request is not passed on (authentik removes it too).
      if (viaHeader && name === 'authorization') continue;
      if (connectionTokens?.has(name) || replaced?.has(name)) continue;
      headers[name] = value;
    }
    const client = resolveClientAddress(req.peer, trusted ? headerValue(req.headers, 'x-forwarded-for') : undefined, this.#isTrusted);
    headers['x-forwarded-for'] = client.forwardedFor;
    headers['x-real-ip'] = client.clientIp;
    headers['x-forwarded-host'] = host;
    headers['x-forwarded-proto'] = scheme;
    let origin = p.internalOrigin!;
    let hostHeader = headerValue(req.headers, 'host') ?? host;
    if (session) {
      // No block (the session's headers name one set above): header by header, the session's winning.
      if (!identity?.upstreamBlock) for (const [name, value] of identity!.upstream) headers[name] = value;
      if (identity!.backendOrigin !== null) origin = identity!.backendOrigin;
      if (identity!.hostHeader !== null) hostHeader = identity!.hostHeader;
    }
    headers.host = hostHeader;
    // Always the same shape (the block may be undefined; metricHost set here, so #dispatch's setting it
    // again adds no property): one hidden class for every proxied answer.
    return { kind: 'proxy', provider: p, origin, path: target, headers, block: identity?.upstreamBlock ?? undefined, metricHost: p.externalHost };
  }

  // ---- shared ---------------------------------------------------------------------------------------

  /**
   * Session check that fails closed: a store error becomes a 503, never a pass. Without a cookie
   * session, an Authorization header is tried (authentik's header authentication): its check is
   * cached cluster-wide as a session keyed by the credential's hash, so only a sha256 runs per request.
   */
  #checkOrFail(p: ProviderRuntime, req: IncomingRequest): SessionCheck | RespondAnswer | Promise<SessionCheck | RespondAnswer> {
    let check: SessionCheck | Promise<SessionCheck>;
    try {
      check = checkSession(this.#deps.store, p, headerValue(req.headers, 'cookie'));
    } catch (err) {
      return this.#storeFailed(p, err);
    }
    if (check instanceof Promise) {
      return check.then(
        (c) => this.#checked(p, req, c),
        (err: unknown) => this.#storeFailed(p, err),
      );
    }
    return this.#checked(p, req, check);
  }

  #storeFailed(p: ProviderRuntime, err: unknown): RespondAnswer {
    if (err instanceof SessionProjectionBehindError) this.#projectionBehind(p, err);
    else this.#deps.log.error({ err, provider: p.name }, 'session store unavailable; failing closed');
    this.#deps.observe?.decision?.(p.name, 'error');
    return pageAnswer(503, 'Sessions unavailable', 'Portcullis cannot read sessions right now. Try again in a moment.', OUTAGE_RETRY_AFTER);
  }

  /**
   * A cookie the projection has not reached although the log holds it (Redis lost the projection and
   * it is being rebuilt, or the session services are catching up): logged at most once per
   * {@link PROJECTION_BEHIND_LOG_EVERY_MS}, with the count of such answers since the last line.
   */
  #projectionBehind(p: ProviderRuntime, err: SessionProjectionBehindError): void {
    this.#behindAnswered += 1;
    const now = performance.now();
    if (now - this.#behindLoggedAt < PROJECTION_BEHIND_LOG_EVERY_MS) return;
    this.#behindLoggedAt = now;
    this.#deps.log.warn(
      { code: err.code, provider: p.name, applied_seq: err.applied, cookie_seq: err.cookieSeq, answered_503_since_last_line: this.#behindAnswered },
      `the session projection is behind the log (applied #${err.applied}, cookie names #${err.cookieSeq}): answering 503 until it catches up; check the session service and Redis`,
    );
    this.#behindAnswered = 0;
  }

  /** After the cookie check: the session, else the Authorization header's credential (asynchronous). */
  #checked(p: ProviderRuntime, req: IncomingRequest, check: SessionCheck): SessionCheck | RespondAnswer | Promise<SessionCheck | RespondAnswer> {
    if (check.session) return this.#accepted(check);
    const authorization = headerValue(req.headers, 'authorization');
    if (!authorization) return check;
    return this.#headerAuth(p, authorization).then((viaHeader) => {
      if (viaHeader === null) return check;
      if ('kind' in viaHeader) return viaHeader;
      return this.#accepted({ session: viaHeader, staleCookie: check.staleCookie, viaHeader: true });
    });
  }

  /**
   * Every request accepted with a session (cookie or header) passes here: a use of the session,
   * reported for idle timeouts (a Map update, nothing awaited) whatever the provider's idle_timeout,
   * so one set by a later reload or restart does not end sessions that were in use meanwhile.
   */
  #accepted(check: SessionCheck): SessionCheck {
    if (this.#activity !== undefined && check.session) this.#activity.touch(check.session, Date.now());
    return check;
  }

  /** The session a credential maps to: cached, or checked by the auth service now. null: not authenticated. */
  async #headerAuth(p: ProviderRuntime, authorization: string): Promise<SessionRecord | RespondAnswer | null> {
    const sessionId = headerAuthSessionId(p.name, p.config.issuer, authorization);
    try {
      const cached = await this.#deps.store.getLiveSession(sessionId);
      if (cached) return cached.provider === p.name ? cached : null;
      const reply = await this.#deps.rpc.request<HeaderAuthReply>(AUTH_SUBJECTS.headerAuth, { provider: p.name, authorization, sessionId }, AUTH_TIMEOUT_MS);
      // Not checked is not refused: the client is told to retry, not that its credential is wrong.
      if (!reply.ok && reply.reason === HEADER_AUTH_UNAVAILABLE) return this.#headerAuthUnavailable(p, null, reply.retryAfterSeconds);
      if (!reply.ok || reply.seq === undefined) {
        this.#deps.observe?.decision?.(p.name, 'header_auth_refused');
        return null;
      }
      await this.#deps.store.waitForApplied(reply.seq, HEADER_AUTH_WAIT_MS);
      const s = await this.#deps.store.getLiveSession(sessionId);
      return s && s.provider === p.name ? s : null;
    } catch (err) {
      return this.#headerAuthUnavailable(p, err);
    }
  }

  /** 503 with Retry-After: when the auth service said when the check may succeed (e.g. the IdP's new signing key is fetched), else the outage default. */
  #headerAuthUnavailable(p: ProviderRuntime, err: unknown, retryAfterSeconds?: unknown): RespondAnswer {
    // From another process: only a positive whole number becomes a header.
    const retryAfter = Number.isSafeInteger(retryAfterSeconds) && (retryAfterSeconds as number) > 0 ? (retryAfterSeconds as number) : undefined;
    if (retryAfter !== undefined) {
      // Expected for a moment after every IdP key rotation, and the client is told when to retry: not an error.
      this.#deps.log.warn({ provider: p.name, retryAfterSeconds: retryAfter }, 'header authentication deferred (retry after the given seconds); failing closed');
    } else {
      this.#deps.log.error(err === null ? { provider: p.name } : { err, provider: p.name }, 'header authentication unavailable; failing closed');
    }
    this.#deps.observe?.decision?.(p.name, 'error');
    return pageAnswer(
      503,
      'Authentication unavailable',
      'Credentials cannot be checked right now. Try again in a moment.',
      // Unknown (IdP or auth service down): the same few seconds as the other outage answers.
      retryAfter === undefined ? OUTAGE_RETRY_AFTER : [['retry-after', String(retryAfter)]],
    );
  }

  /** The anonymous identity headers of an allow-listed answer, built once per provider and never changed (shared by answers). */
  #anonymousHeaders(p: ProviderRuntime): Array<[string, string]> {
    let headers = this.#anonymous.get(p);
    if (!headers) {
      headers = anonymousIdentityHeaders(p, this.#meta).map(wireHeader);
      this.#anonymous.set(p, headers);
    }
    return headers;
  }

  #deletionCookie(p: ProviderRuntime): string {
    return serializeDeletionCookie(p.sessionCookie, { domain: p.config.cookie_domain, secure: p.secure });
  }
}

/**
 * A login or sign-out answer given to a forward-auth check: the front proxy lets the original request
 * through on any 2xx, so a page such as "Signed out" (200 without a session) is sent as a 401 instead;
 * the front proxy shows it to the user. Redirects and errors are unchanged.
 */
async function neverAPass(answer: Promise<RespondAnswer>): Promise<RespondAnswer> {
  const a = await answer;
  return a.status >= 200 && a.status < 300 ? { ...a, status: 401 } : a;
}

function wireHeader([name, value]: [string, string]): [string, string] {
  return [name, encodeHeaderValueForWire(value)];
}

/**
 * Whether a cookie set in an answer to `host` (a Host header value, port allowed) is sent with the
 * callback on external_host: with a cookie_domain, when the host is in that domain; without, when it
 * is external_host's own host (cookies ignore ports; browsers keep `app.company.` apart from
 * `app.company`). external_host itself always counts, so the redirect to it can never loop.
 */
function stateCookieReachesCallback(p: ProviderRuntime, host: string): boolean {
  const lower = host.toLowerCase();
  const hostname = lower.startsWith('[') ? lower.slice(0, lower.indexOf(']') + 1) : lower.replace(/:\d*$/, '');
  if (hostname === p.externalUrl.hostname) return true;
  const domain = normalizeCookieDomain(p.config.cookie_domain);
  return domain !== '' && (hostname === domain || hostname.endsWith(`.${domain}`));
}

/** `scheme://authority` at the start of an absolute URL, as sent. */
const SCHEME_AND_AUTHORITY = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/**
 * True when nginx sent both original-URL headers and they name different targets (path, or a host
 * other than X-Forwarded-Host / Host, which X-Original-URI is rebuilt against). nginx sends
 * `$scheme://$http_host$request_uri` and `$request_uri`: compared as sent, since the URL parser
 * re-encodes (quotes, braces, UTF-8) and resolves dot segments that nginx passes unchanged.
 */
function originalHeadersDisagree(req: IncomingRequest): boolean {
  const uri = headerValue(req.headers, 'x-original-uri');
  const full = headerValue(req.headers, 'x-original-url');
  if (!uri || !full) return false;
  const prefix = SCHEME_AND_AUTHORITY.exec(full);
  if (prefix === null || full.slice(prefix[0].length) !== uri) return true;
  // X-Original-URI is rebuilt against X-Forwarded-Host (else Host): it must name X-Original-URL's host.
  const host = headerValue(req.headers, 'x-forwarded-host')?.split(',')[0]?.trim() || headerValue(req.headers, 'host');
  return host === undefined || prefix[0].slice(prefix[0].indexOf('//') + 2).toLowerCase() !== host.toLowerCase();
}

/** Cookies whose name starts with `prefix` (the login-state cookies of one provider). */
function collectCookies(header: string | undefined, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    if (name.startsWith(prefix) && !(name in out)) out[name] = part.slice(eq + 1).trim();
  }
  return out;
}

/** Names listed in a Connection header: hop-by-hop for this message only. */
function connectionHeaderTokens(connection: string | undefined): Set<string> | undefined {
  // The usual values name only headers that are never forwarded anyway: no set built per request.
  if (!connection || CONNECTION_NAMING_ONLY_HOP_BY_HOP.has(connection)) return undefined;
  return new Set(connection.split(',').map((t) => t.trim().toLowerCase()));
}

const DOT_SEGMENT = /\/\.|%2e/i;

/**
 * The request path the upstream will receive, which is also the path that is judged: repeated
 * slashes merged and dot segments (also `%2e` forms) resolved, other escapes kept as sent.
 * Backslash paths are passed unchanged (they are never allow-listed). null: not an origin-form path.
 */
export function canonicalRawPath(rawPath: string): string | null {
  if (!rawPath.startsWith('/')) return null;
  if (rawPath.includes('\\')) return rawPath;
  const merged = rawPath.includes('//') ? rawPath.replace(/\/{2,}/g, '/') : rawPath;
  if (!DOT_SEGMENT.test(merged)) return merged;
  return new URL(merged, 'http://portcullis.invalid').pathname;
}

/** Labels an answer with its provider's external host (metrics, spans). */
function withMetricHost<A extends Answer>(answer: A, p: ProviderRuntime): A {
  answer.metricHost = p.externalHost;
  return answer;
}
