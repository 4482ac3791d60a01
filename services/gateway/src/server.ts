// The gateway process part: HTTP and HTTPS (SNI) listeners around the decision handler — a direct path for most requests, fastify for the rest.
import { type IncomingHttpHeaders, type IncomingMessage, METHODS, type RequestListener, type ServerResponse, createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { PortcullisConfig } from '@portcullis/config';
import { tracingEnabled } from '@portcullis/telemetry';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { type Answer, HTML_TYPE, JSON_TYPE, TEXT_TYPE, textAnswer } from './answers.ts';
import { FrontEnd, type FrontRequest, FrontResponse, HeadLines, frontEndAvailable } from './front-h1.ts';
import { GatewayHandler, type GatewayHandlerDeps } from './gateway-handler.ts';
import type { IncomingRequest } from './request-context.ts';
import { type ServedCertificate, buildTlsOptions } from './tls.ts';
import { logUpstreamFailures } from './upstream-failures.ts';
import {
  type ClientResponse,
  type Lifecycle,
  type RelayClientRequest,
  UpstreamPools,
  type UpstreamObserver,
  proxyHttp,
  proxyUpgrade,
  writeRawResponse,
} from './upstream.ts';

/** Dependencies of a gateway: the handler's, plus metric hooks for HTTP timings. */
export interface GatewayDeps extends GatewayHandlerDeps {
  observeRequest?: (method: string, host: string, type: 'app' | 'ping', seconds: number) => void;
  observeUpstream?: UpstreamObserver;
  /**
   * false: every request goes through fastify's routing, as with tracing on. For the test that holds
   * the direct path to the very bytes of the fastify path; production leaves it unset (direct).
   */
  directPath?: boolean;
  /**
   * false: node's http.Server reads every request of the HTTP listener, as on the HTTPS one. For the
   * test that holds the front end (front-h1.ts) to node's bytes; production leaves it unset (on).
   */
  frontEnd?: boolean;
}

/** The fastify options its `serverFactory` sees (the ones it would give its own server). */
interface ServerFactoryOptions {
  keepAliveTimeout: number;
  requestTimeout: number;
  connectionTimeout: number;
  maxRequestsPerSocket: number;
}

/** A built gateway: `http` is usable with `inject` before `start` binds anything. */
export interface Gateway {
  handler: GatewayHandler;
  http: FastifyInstance;
  https: FastifyInstance | null;
  /** Binds the listeners from `config.outpost.listen`. */
  start(): Promise<void>;
  /**
   * Switches to a new (validated) config between requests: providers, headers, skip rules, TLS
   * certificates. Sessions live in the store, so they survive. Listen addresses need a restart.
   */
  reload(config: PortcullisConfig): void;
  /** The config in force (the last one given to `reload`, or the first). */
  readonly config: PortcullisConfig;
  /**
   * Reads the certificate and key files of the config in force again and swaps them into the HTTPS
   * listener (open connections keep theirs); returns what is served now, or null without an HTTPS
   * listener. Throws, changing nothing, when a file does not load or `accept` refuses what was read
   * (its reason is the error's message). Check the files first (`checkServerCertificates`): this does
   * not look at their dates; `accept` is where to make sure what was read is what was checked.
   */
  reloadCertificates(accept?: (loaded: ServedCertificate[]) => string | undefined): ServedCertificate[] | null;
  /**
   * The provider certificates the HTTPS listener serves now (after the last `reload` or
   * `reloadCertificates`), or null without an HTTPS listener.
   */
  readonly certificates: ServedCertificate[] | null;
  /**
   * The certificate and key files those certificates were read from, each with the SHA-256 (hex) of
   * the bytes read then: a file whose bytes hash otherwise now has changed since. null without an HTTPS listener.
   */
  readonly certificateFiles: ReadonlyMap<string, string> | null;
  /** Stops accepting, finishes in-flight requests, closes upstream pools. */
  stop(): Promise<void>;
}

/**
 * Every method node's HTTP parser accepts (WebDAV, PURGE, SEARCH, QUERY, ...): fastify knows only the
 * common ones until told, and a protected app may need any of them (authentik passes every method).
 * CONNECT never reaches a request listener (node emits 'connect'). Bodies stream through unparsed.
 */
const EXTRA_METHODS: string[] = METHODS.filter((m) => m !== 'CONNECT');

/**
 * The largest request head the listeners accept. node's default (16 KiB) answered 431 to browsers
 * carrying an app's large cookies (ASP.NET's chunked auth cookies reach 20–30 KB), which authentik
 * (Go, 1 MiB) proxies; 64 KiB covers them while keeping per-connection parser memory small.
 */
const MAX_REQUEST_HEADER_BYTES = 64 * 1024;

/** The framework-free view of a request; `readBody` is a method so no closure is built per request. */
class RawIncoming implements IncomingRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly peer: string;
  readonly encrypted: boolean;
  readonly #raw: IncomingMessage;

  constructor(raw: IncomingMessage) {
    this.#raw = raw;
    this.method = raw.method ?? 'GET';
    this.url = raw.url ?? '/';
    this.headers = raw.headers;
    this.peer = raw.socket.remoteAddress ?? '';
    this.encrypted = (raw.socket as TLSSocket).encrypted === true;
  }

  readBody(limit: number): Promise<string> {
    return readLimited(this.#raw, limit);
  }
}

/** An upgrade request: its body is the upgraded stream, so it offers no `readBody`. */
function toIncomingUpgrade(raw: IncomingMessage): IncomingRequest {
  return {
    method: raw.method ?? 'GET',
    url: raw.url ?? '/',
    headers: raw.headers,
    peer: raw.socket.remoteAddress ?? '',
    encrypted: (raw.socket as TLSSocket).encrypted === true,
  };
}

/** Reads a request body as UTF-8 text, rejecting once it exceeds `limit` bytes. */
async function readLimited(raw: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of raw) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Holds the decision handler for the current config; a reload swaps it between requests. */
interface HandlerSlot {
  handler: GatewayHandler;
}

/**
 * Whether a request goes through fastify rather than the direct path: with tracing on (fastify's
 * OpenTelemetry hooks make the request span), for methods fastify does not route (it answers them
 * 404), and for paths with a percent sign (fastify refuses an invalid escape with a 400).
 */
function needsFastify(req: IncomingMessage, methods: ReadonlySet<string>): boolean {
  if (tracingEnabled() || !methods.has(req.method ?? '')) return true;
  return targetNeedsFastify(req.url ?? '/');
}

/** A request target with a percent sign in its path (see {@link needsFastify}). */
function targetNeedsFastify(url: string): boolean {
  const pct = url.indexOf('%');
  if (pct === -1) return false;
  const query = url.indexOf('?');
  return query === -1 || pct < query;
}

/**
 * Builds one listener's fastify app around the direct path. On the plain-HTTP listener (unless traced),
 * a front end (front-h1.ts) takes the server's connections first and is added to `fronts`.
 */
function buildApp(slot: HandlerSlot, pools: UpstreamPools, deps: GatewayDeps, upgraded: Set<Duplex>, fronts: FrontEnd[], https?: object): FastifyInstance {
  const lifecycle: Lifecycle = { closing: false };
  // Filled in once fastify knows its methods; the server only calls `dispatch` after listen.
  let methods: ReadonlySet<string> = new Set();
  const direct = deps.directPath !== false;
  const app = Fastify({
    logger: false,
    // While closing, requests still arriving on open keep-alive connections are answered normally,
    // with Connection: close (the bus and store stop after the gateway), so a rolling restart fails
    // no request; new connections are refused and idle ones closed.
    return503OnClosing: false,
    requestIdHeader: false,
    ...(https ? { https } : {}),
    // HOT: the request listener. Most requests skip fastify's routing, Request/Reply objects and hooks
    // (about a tenth of a forward-auth decision's CPU) and are served by serveDirect; the rest go to fastify.
    serverFactory: (fastifyHandler: RequestListener, options: ServerFactoryOptions) => {
      const dispatch: RequestListener = (req, res) => {
        if (!direct || needsFastify(req, methods)) fastifyHandler(req, res);
        else serveDirect(slot, pools, deps, lifecycle, new RawIncoming(req), req, res);
      };
      // As fastify builds its own server (lib/server.js), with our listener in front.
      const server = https
        ? createHttpsServer({ ...https, maxHeaderSize: MAX_REQUEST_HEADER_BYTES }, dispatch)
        : createHttpServer({ maxHeaderSize: MAX_REQUEST_HEADER_BYTES }, dispatch);
      server.keepAliveTimeout = options.keepAliveTimeout;
      server.requestTimeout = options.requestTimeout;
      server.setTimeout(options.connectionTimeout);
      if (options.maxRequestsPerSocket > 0) server.maxRequestsPerSocket = options.maxRequestsPerSocket;
      // The front end writes node's keep-alive answers itself; it does not count requests per socket or
      // time whole connections, so with either limit set node's server keeps every request.
      if (!https && direct && deps.frontEnd !== false && frontEndAvailable && !tracingEnabled() && !(options.maxRequestsPerSocket > 0) && !(options.connectionTimeout > 0)) {
        const serve = (req: FrontRequest, res: FrontResponse) => serveDirect(slot, pools, deps, lifecycle, req, req, res);
        fronts.push(new FrontEnd(server, serve, (url) => !targetNeedsFastify(url)));
      }
      return server;
    },
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;
  // Every method is bodyless to fastify: bodies stream to the upstream unparsed, so fastify must not
  // judge their Content-Type first (it refused an empty one, `text`, or a QUERY without one, and the
  // error handler made that a 500 the direct path never gives).
  for (const method of EXTRA_METHODS) app.addHttpMethod(method, { hasBody: false, overrideExisting: true });
  methods = new Set(app.supportedMethods);
  app.addHook('preClose', (done) => {
    lifecycle.closing = true;
    done();
  });
  // Bodies are streamed to the upstream untouched, never parsed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', function passThrough(_req, _payload, done) {
    done(null, undefined);
  });
  // A failure to write an answer (an invalid header value) is a 500 without internals, on both paths.
  app.setErrorHandler(function internalError(err, _request, reply) {
    deps.log.error({ err }, 'gateway: could not write an answer');
    // A writeHead that threw has already set its status message (OK for a 200).
    reply.raw.statusMessage = INTERNAL_ERROR_REASON;
    return sendAnswer(reply, INTERNAL_ERROR);
  });
  app.route({
    method: app.supportedMethods,
    url: '*',
    handler: async function handleRequest(request: FastifyRequest, reply: FastifyReply) {
      const started = performance.now();
      const raw = request.raw;
      const answer = await slot.handler.handle(new RawIncoming(raw));
      if (deps.observeRequest) observeOnFinish(deps.observeRequest, raw, reply.raw, answer, started);
      if (lifecycle.closing) reply.raw.shouldKeepAlive = false;
      if (answer.kind === 'respond') {
        // With tracing on, fastify's send path runs (its OpenTelemetry hook ends the request span on send).
        if (!tracingEnabled() && writeAnswer(reply, answer)) return reply;
        return sendAnswer(reply, answer);
      }
      reply.hijack();
      proxyHttp(pools, answer, raw, reply.raw, deps.observeUpstream, lifecycle);
      return reply;
    },
  });
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    // Upgraded sockets leave node's HTTP connection tracking; the shutdown grace closes them itself.
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    slot.handler.handle(toIncomingUpgrade(req)).then(
      (answer) => {
        if (answer.kind === 'proxy') return proxyUpgrade(pools, answer, req, socket, head);
        const contentType = answer.headers.find(([k]) => k === 'content-type')?.[1] ?? 'text/plain';
        writeRawResponse(
          socket,
          answer.status,
          contentType,
          answer.body,
          answer.headers.filter(([k]) => k !== 'content-type'),
        );
      },
      () => socket.destroy(),
    );
  });
  return app;
}

/**
 * Serves one request without fastify (HOT): decide, then write the answer or relay it to the upstream.
 * `incoming` is the gateway's view of `req` (the front end's request is both).
 */
function serveDirect(slot: HandlerSlot, pools: UpstreamPools, deps: GatewayDeps, lifecycle: Lifecycle, incoming: IncomingRequest, req: RelayClientRequest, res: ClientResponse): void {
  const started = performance.now();
  try {
    // Synchronous for a session known from memory (no promise, no closure); a Promise otherwise.
    const decided = slot.handler.decide(incoming);
    if (decided instanceof Promise) {
      decided.then(
        (answer) => answerDirect(pools, deps, lifecycle, req, res, started, answer),
        // decide() never rejects (failures are 5xx answers); this is the net under that promise.
        (err: unknown) => failDirect(deps, res, err),
      );
    } else {
      answerDirect(pools, deps, lifecycle, req, res, started, decided);
    }
  } catch (err) {
    // Nothing may escape a request listener (it would end the process).
    failDirect(deps, res, err);
  }
}

/** Writes a decided answer, or relays the request to the upstream. */
function answerDirect(pools: UpstreamPools, deps: GatewayDeps, lifecycle: Lifecycle, req: RelayClientRequest, res: ClientResponse, started: number, answer: Answer): void {
  if (lifecycle.closing) res.shouldKeepAlive = false;
  // Durations are recorded where the answer ends (no 'finish' listener per request): here for a
  // written answer, in the relay for a proxied one.
  if (answer.kind === 'proxy') {
    proxyHttp(pools, answer, req, res, deps.observeUpstream, lifecycle, deps.observeRequest && { observe: deps.observeRequest, started });
    return;
  }
  try {
    writeAnswerTo(res, answer, true);
  } catch (err) {
    failDirect(deps, res, err);
  }
  if (deps.observeRequest) observeDuration(deps.observeRequest, req, answer, started);
}

/** The answer to a request whose answer could not be written: a 500 naming nothing internal. */
const INTERNAL_ERROR_REASON = 'Internal Server Error';
const INTERNAL_ERROR = textAnswer(500, 'Internal Server Error: the gateway could not answer this request; its log says why.');

function failDirect(deps: GatewayDeps, res: ClientResponse, err: unknown): void {
  deps.log.error({ err }, 'gateway: could not write an answer');
  if (res.headersSent) return void res.destroy();
  // A writeHead that threw has already set its status message (OK for a 200).
  res.statusMessage = INTERNAL_ERROR_REASON;
  writeAnswerTo(res, INTERNAL_ERROR, true);
}

/**
 * Records a request's duration until now (request duration histogram); `type` is authentik's "ping"
 * for the outpost's own ping, else "app".
 */
function observeDuration(observe: NonNullable<GatewayDeps['observeRequest']>, req: RelayClientRequest, answer: Answer, started: number): void {
  const type = answer.kind === 'respond' && answer.status === 204 && !answer.metricHost ? 'ping' : 'app';
  observe(req.method ?? 'GET', answer.metricHost ?? 'unknown', type, (performance.now() - started) / 1000);
}

/** Times the request to its last byte on the fastify path. */
function observeOnFinish(observe: NonNullable<GatewayDeps['observeRequest']>, req: IncomingMessage, res: ServerResponse, answer: Answer, started: number): void {
  res.once('finish', () => observeDuration(observe, req, answer, started));
}

export function sendAnswer(reply: FastifyReply, answer: Extract<Answer, { kind: 'respond' }>): FastifyReply {
  reply.code(answer.status);
  const cookies: string[] = [];
  for (const [name, value] of answer.headers) {
    if (name === 'set-cookie') cookies.push(value);
    else reply.header(name, value);
  }
  if (cookies.length > 0) reply.header('set-cookie', cookies);
  return reply.send(answer.status === 204 ? undefined : answer.body);
}

/** Content-Types fastify sends unchanged: the ones `answers.ts` uses. */
const AS_IS_TYPES = new Set([TEXT_TYPE, HTML_TYPE, JSON_TYPE]);

/**
 * Writes a direct answer on the raw response (HOT: forward-auth decisions, redirects) with the very
 * bytes {@link sendAnswer} makes fastify write, without fastify's per-reply header bookkeeping and
 * send pipeline: names lower-cased; a repeated name keeps its first position and its last value;
 * Set-Cookie values appended in order (the ones named exactly `set-cookie` after the others);
 * text/plain for a body without a type; Content-Length, except on 204. Returns false, having
 * written nothing, when the answer has another Content-Type than text/plain or text/html (fastify
 * rewrites some: JSON gets a charset, an invalid one becomes text/plain), so fastify sends it.
 */
export function writeAnswer(reply: FastifyReply, answer: Extract<Answer, { kind: 'respond' }>): boolean {
  if (!writeAnswerTo(reply.raw, answer, false)) return false;
  reply.hijack();
  return true;
}

/**
 * {@link writeAnswer} on a bare response. `anyType`: write any Content-Type as given (the direct
 * path, where no fastify could take the answer; every type `answers.ts` uses is sent as is anyway).
 */
function writeAnswerTo(res: ClientResponse, answer: Extract<Answer, { kind: 'respond' }>, anyType: boolean): boolean {
  let head = answer.sharedHeaders ? PREPARED.get(answer.headers) : undefined;
  if (head === undefined || head.status !== answer.status || head.body !== answer.body) {
    head = prepareHead(answer);
    if (answer.sharedHeaders) PREPARED.set(answer.headers, head);
  }
  if (head.otherType && !anyType) return false;
  // writeHead only stores the head, and throws on an invalid value before anything is sent (a 500
  // follows); a fastify reply is hijacked only once the head is good. The front end takes the lines
  // checked and serialized once per prepared head.
  if (res instanceof FrontResponse) {
    head.lines ??= new HeadLines(head.fields);
    res.writeHeadLines(answer.status, head.lines);
  } else {
    res.writeHead(answer.status, head.fields);
  }
  res.end(answer.status === 204 ? undefined : answer.body);
  return true;
}

/** An answer's head as {@link writeAnswerTo} writes it: flat name/value pairs, in order. */
interface PreparedHead {
  status: number;
  body: string;
  fields: string[];
  /** A Content-Type fastify would rewrite (see {@link writeAnswer}). */
  otherType: boolean;
  /** `fields` as the front end writes them, built at its first use there. */
  lines?: HeadLines;
}

/** Heads of shared answer header lists (a session's forward-auth answer), prepared once per list and body. */
const PREPARED = new WeakMap<ReadonlyArray<[string, string]>, PreparedHead>();

function prepareHead(answer: Extract<Answer, { kind: 'respond' }>): PreparedHead {
  const headers: Record<string, string | string[]> = {};
  let deferred: string[] | undefined;
  let otherType = false;
  for (const [name, value] of answer.headers) {
    if (name === 'set-cookie') {
      if (deferred) deferred.push(value);
      else deferred = [value];
      continue;
    }
    const key = lowerHeaderName(name);
    if (key === 'set-cookie') addCookie(headers, value);
    else {
      if (key === 'content-type' && !AS_IS_TYPES.has(value)) otherType = true;
      headers[key] = value;
    }
  }
  if (deferred) for (const c of deferred) addCookie(headers, c);
  if (answer.status !== 204) {
    // fastify's default Content-Type for a string body sent without one.
    if (headers['content-type'] === undefined) headers['content-type'] = TEXT_TYPE;
    headers['content-length'] = String(Buffer.byteLength(answer.body));
  }
  // Flat pairs: a repeated name (Set-Cookie) gives adjacent pairs, the bytes an array value gives.
  const fields: string[] = [];
  for (const key in headers) {
    const value = headers[key]!;
    if (typeof value === 'string') fields.push(key, value);
    else for (const v of value) fields.push(key, v);
  }
  return { status: answer.status, body: answer.body, fields, otherType };
}

function addCookie(headers: Record<string, string | string[]>, value: string): void {
  const current = headers['set-cookie'];
  if (current === undefined) headers['set-cookie'] = [value];
  else (current as string[]).push(value);
}

/** Header names of answers repeat from a small set (X-authentik-*, Location, ...): lower-case each once. */
const LOWER_NAMES = new Map<string, string>();
function lowerHeaderName(name: string): string {
  let lower = LOWER_NAMES.get(name);
  if (lower === undefined) {
    lower = name.toLowerCase();
    // Names come from config and the code, not from clients; the bound is a safety net.
    if (LOWER_NAMES.size < 1024) LOWER_NAMES.set(name, lower);
  }
  return lower;
}

/** Parses `host:port` / `[v6]:port`. */
export function parseListen(addr: string): { host: string; port: number } {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(addr);
  if (!m) throw new Error(`invalid listen address ${addr}`);
  return { host: m[1] === '' ? '0.0.0.0' : m[1]!, port: Number(m[2]) };
}

/** While stopping, how often connections that went idle since (their answer ended) are closed. */
const IDLE_REAP_MS = 100;

/** Builds the gateway from its dependencies; nothing listens until `start`. */
export async function createGateway(deps: GatewayDeps): Promise<Gateway> {
  const slot: HandlerSlot = { handler: new GatewayHandler(deps) };
  let config = deps.config;
  const pools = new UpstreamPools();
  const upgraded = new Set<Duplex>();
  // The listeners' view of the deps: upstream failures are logged as well as measured.
  const appDeps: GatewayDeps = { ...deps, observeUpstream: logUpstreamFailures(deps.log, deps.observeUpstream) };
  const fronts: FrontEnd[] = [];
  const http = buildApp(slot, pools, appDeps, upgraded, fronts);
  const httpsAddr = deps.config.outpost.listen.https;
  const tls = httpsAddr ? await buildTlsOptions(deps.config) : null;
  const https = tls ? buildApp(slot, pools, appDeps, upgraded, fronts, tls.options) : null;
  return {
    get handler() {
      return slot.handler;
    },
    http,
    https,
    get config() {
      return config;
    },
    reloadCertificates(accept) {
      return tls ? tls.update(config, accept) : null;
    },
    get certificates() {
      return tls ? tls.served() : null;
    },
    get certificateFiles() {
      return tls ? tls.files() : null;
    },
    reload(nextConfig) {
      // Build everything first: an error leaves the running handler untouched.
      const next = new GatewayHandler({ ...deps, config: nextConfig });
      tls?.update(nextConfig);
      slot.handler = next;
      config = nextConfig;
    },
    async start() {
      await http.listen(parseListen(deps.config.outpost.listen.http));
      if (https && httpsAddr) await https.listen(parseListen(httpsAddr));
    },
    async stop() {
      // In-flight requests finish (their answers say Connection: close); what is still open when the
      // grace is over (long downloads, event streams, WebSockets) is closed, so a SIGTERM always ends.
      const graceSeconds = config.outpost.shutdown_grace_seconds;
      const timer = setTimeout(() => {
        const open = upgraded.size;
        http.server.closeAllConnections();
        https?.server.closeAllConnections();
        for (const front of fronts) front.closeAll();
        for (const socket of upgraded) socket.destroy();
        deps.log.warn({ graceSeconds, upgradedSockets: open }, 'shutdown grace over: closing the connections still open');
      }, graceSeconds * 1000);
      // close() closes the connections idle at that moment only: one whose answer was under way (its
      // head already said keep-alive) would stay open, idle, until the grace is over. Close each as its
      // answer ends.
      const reaper = setInterval(() => {
        http.server.closeIdleConnections();
        https?.server.closeIdleConnections();
        for (const front of fronts) front.closeIdle();
      }, IDLE_REAP_MS);
      try {
        await Promise.all([http.close(), https?.close()]);
      } finally {
        clearTimeout(timer);
        clearInterval(reaper);
      }
      await pools.close();
    },
  };
}
