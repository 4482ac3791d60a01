// Executes proxy answers: plain HTTP over native-parser keep-alive pools, HTTPS (and traced processes) through undici pools, WebSocket upgrades by splicing sockets.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { type Duplex, PassThrough } from 'node:stream';
import { tracingEnabled } from '@portcullis/telemetry';
import { Pool } from 'undici';
import type { ProxyAnswer } from './answers.ts';
import { renderPage } from './pages.ts';
import { type H1Options, H1Pools, type RelayHandler, UpstreamError, nativeRelayAvailable } from './upstream-h1.ts';

/** Response headers that never cross a proxy. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/**
 * The largest response head accepted from an upstream. undici's default is node's 16 KiB, so an app
 * whose answer carries more (ASP.NET's chunked auth cookies, long CSPs) got a 502 for a working
 * backend; authentik (Go) accepts 10 MiB, browsers about 256 KiB.
 */
const UPSTREAM_MAX_HEADER_BYTES = 1024 * 1024;
/** Limits both clients share (undici's pools and the native relay behave alike). */
const UPSTREAM_CONNECTIONS = 256;
const UPSTREAM_IDLE_MS = 30_000;
const UPSTREAM_HEADERS_TIMEOUT_MS = 60_000;

/** Which client carries plain-HTTP upstream requests. */
export interface UpstreamPoolOptions {
  /**
   * `native` (default): raw keep-alive sockets framed by node's llhttp (upstream-h1.ts), ~25 % less
   * CPU per proxied request. `undici` everywhere when tracing is on (its instrumentation makes the
   * upstream call a span and propagates the trace to the app) or when this node lacks the parser.
   */
  plainHttp?: 'native' | 'undici';
  /** Overrides of the native pools' limits (tests). */
  native?: Partial<H1Options>;
  /** undici path: how long a request body may stop coming before the exchange ends (default: the headers timeout). */
  bodyStallMs?: number;
}

/** One pool per upstream origin and TLS policy, reused across requests. */
export class UpstreamPools {
  /** By origin, one map per TLS policy (no key string is built per request). */
  readonly #verified = new Map<string, Pool>();
  readonly #unverified = new Map<string, Pool>();
  /** Plain-HTTP origins on the native relay, or null when undici carries them too. */
  readonly plain: H1Pools | null;
  readonly bodyStallMs: number;

  constructor(options: UpstreamPoolOptions = {}) {
    this.bodyStallMs = options.bodyStallMs ?? UPSTREAM_HEADERS_TIMEOUT_MS;
    const mode = options.plainHttp ?? (nativeRelayAvailable && !tracingEnabled() ? 'native' : 'undici');
    this.plain =
      mode === 'native' && nativeRelayAvailable
        ? new H1Pools({
            maxConnections: UPSTREAM_CONNECTIONS,
            idleMs: UPSTREAM_IDLE_MS,
            headersTimeoutMs: UPSTREAM_HEADERS_TIMEOUT_MS,
            connectTimeoutMs: 10_000, // undici's default connect timeout
            maxHeaderBytes: UPSTREAM_MAX_HEADER_BYTES,
            ...options.native,
          })
        : null;
  }

  get(origin: string, verifyTls: boolean): Pool {
    const pools = verifyTls ? this.#verified : this.#unverified;
    let pool = pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connections: UPSTREAM_CONNECTIONS,
        pipelining: 1,
        keepAliveTimeout: UPSTREAM_IDLE_MS,
        headersTimeout: UPSTREAM_HEADERS_TIMEOUT_MS,
        maxHeaderSize: UPSTREAM_MAX_HEADER_BYTES,
        bodyTimeout: 0, // streaming responses (SSE, long polls) may be silent for long
        connect: { rejectUnauthorized: verifyTls },
      });
      pools.set(origin, pool);
    }
    return pool;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#verified.values(), ...this.#unverified.values()].map((p) => p.close().catch(() => {})).concat(this.plain?.close() ?? []));
    this.#verified.clear();
    this.#unverified.clear();
  }
}

/**
 * A listener's shutdown state. Once `closing`, answers say `Connection: close` (also answers decided
 * or relayed after the close began), so no keep-alive connection, busy or not, holds the shutdown.
 */
export interface Lifecycle {
  closing: boolean;
}

/** What the executor reports per proxied request (for metrics and logs). */
export type UpstreamObserver = (answer: ProxyAnswer, method: string, seconds: number, error?: unknown) => void;

/**
 * The whole request's duration, reported by the relay when the answer ends (answered, failed or
 * cancelled): `started` is the `performance.now()` of the request's arrival.
 */
export interface RequestObserver {
  observe: (method: string, host: string, type: 'app', seconds: number) => void;
  started: number;
}

/** The client's request as the relay reads it: node's IncomingMessage, or a front-end request (front-h1.ts; never with a body). */
export interface RelayClientRequest {
  readonly method?: string | undefined;
  readonly headers: IncomingHttpHeaders;
  /** The whole request (its body included) has arrived. */
  readonly complete: boolean;
  readonly socket: { readonly bytesRead: number };
}

/**
 * The client's response as the relay and the gateway's answer writer use it: the subset of node's
 * ServerResponse that the front end's FrontResponse (front-h1.ts) implements too.
 */
export interface ClientResponse {
  shouldKeepAlive: boolean;
  statusMessage: string;
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly writableFinished: boolean;
  readonly writableLength: number;
  readonly socket: Socket | null;
  writeHead(status: number, headers?: string[] | Record<string, string | number>): this;
  write(chunk: Buffer, cb?: () => void): boolean;
  end(chunk?: Buffer | string, cb?: () => void): this;
  flushHeaders(): void;
  cork(): void;
  uncork(): void;
  destroy(): void;
  on(event: 'close', listener: (this: ClientResponse) => void): this;
  once(event: 'drain', listener: () => void): this;
  off(event: 'drain', listener: () => void): this;
}

function requestHasBody(req: RelayClientRequest): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

/** Why an upstream request was cancelled: the client went away before its answer was complete. */
class ClientGoneError extends Error {
  constructor() {
    super('the client closed the connection before the proxied response was complete');
    this.name = 'ClientGoneError';
  }
}

/** The header names a `Connection` value lists beyond the usual `keep-alive`/`close` (null when none). */
function connectionNamed(value: string, into: Set<string> | null): Set<string> | null {
  // HOT: nearly every keep-alive answer says just this.
  if (value === 'keep-alive' || value === 'close' || value === 'Keep-Alive') return into;
  let names = into;
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name === '' || name === 'keep-alive' || name === 'close' || name === 'upgrade') continue;
    names ??= new Set();
    names.add(name);
  }
  return names;
}

/** `headers` ([name, value, ...], names lower-case) without the names in `named`, and never Content-Length's framing. */
function withoutNamed(headers: string[], named: Set<string>): string[] {
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (named.has(name) && name !== 'content-length') continue;
    kept.push(name, headers[i + 1]!);
  }
  return kept;
}

/** A header name or value as sent: undici hands over bytes, the native relay strings (already latin1). */
function latin1(x: string | Buffer): string {
  return typeof x === 'string' ? x : x.toString('latin1');
}

/** A sized answer's body chunks held for one write stop being held at this many bytes (see `ProxyExchange`). */
const HOLD_MAX_BYTES = 128 * 1024;

/** The end of a turn of the event loop: what an exchange held goes out (one function for every exchange, no closure). */
function flushHeldBody(exchange: ProxyExchange): void {
  exchange.flushHeld();
}

/** Where a response being relayed keeps its exchange, for the shared 'close' listener. */
const EXCHANGE = Symbol('portcullis.proxyExchange');
type ExchangeResponse = ClientResponse & { [EXCHANGE]?: ProxyExchange };

function onClientClose(this: ClientResponse): void {
  (this as ExchangeResponse)[EXCHANGE]?.clientClosed();
}

/**
 * One proxied exchange as a relay handler (HOT; undici's dispatch interface, which the native relay
 * drives too): the upstream's status, headers and body chunks are written to the client's response
 * as they are parsed, with backpressure (the upstream socket is paused while the client's buffer is
 * full). Compared with `pool.request` + `stream.pipeline` this allocates no body stream, no promise
 * and no AbortController/AbortSignal per request (pipeline aborts one per call, which builds a
 * DOMException with a stack trace), and a sized answer the upstream sent at once leaves in one `writev`. Cancellation: when
 * the client's response closes early, the upstream request is aborted (its upstream connection is
 * destroyed), also while it is still queued for a connection.
 */
class ProxyExchange implements RelayHandler {
  readonly #answer: ProxyAnswer;
  readonly #method: string;
  readonly #req: RelayClientRequest;
  readonly #res: ClientResponse;
  readonly #observe: UpstreamObserver | undefined;
  readonly #lifecycle: Lifecycle | undefined;
  readonly #request: RequestObserver | undefined;
  readonly #started = performance.now();
  #abort: ((err?: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  /** Built on the first full client buffer only (most answers never need it). */
  #onDrain: (() => void) | null = null;
  /** A drain is awaited: the native relay hands over the rest of a read after a pause (one chunk each, many for a stream of small chunks), and one wait serves them all. */
  #awaitingDrain = false;
  #clientGone = false;
  #done = false;
  /**
   * A sized answer's head is held until its first body bytes or its end (node would not send it
   * before then either): a body that comes whole in one chunk goes out with it in one end(), and an
   * upstream that fails before any body byte still gets the client a 502 rather than a cut answer.
   */
  #heldHead: string[] | null = null;
  #heldStatus = 0;
  /** The held answer's Content-Length. */
  #heldLength = -1;
  /**
   * A sized answer's body chunks are held too (with the head, if it is still held) until the end of
   * this turn of the event loop, the answer's end, or {@link HOLD_MAX_BYTES}: what the upstream sent
   * together reaches the client in one `writev` instead of one per read (each write wakes the client,
   * the costliest part of relaying a 64 KiB answer). Never across turns: a slow upstream's bytes still
   * flow as they come. Not while the client's buffer is full (then chunks go the backpressure way).
   */
  #sized = false;
  /** Held body chunks (null until the first: most answers come whole in one chunk and never need it). */
  #held: Buffer[] | null = null;
  /** The native relay's release of each held chunk lent from its pool (same index; null while none was lent). */
  #heldRelease: Array<(() => void) | undefined> | null = null;
  #heldBytes = 0;
  #flushScheduled = false;
  /** end() was called with the whole body (before the relay's onComplete). */
  #ended = false;
  /** undici path with a request body: how long the body may stop coming (0: not watched) and the watch. */
  bodyStallMs = 0;
  #stallWatch: NodeJS.Timeout | null = null;

  constructor(
    answer: ProxyAnswer,
    method: string,
    req: RelayClientRequest,
    res: ClientResponse,
    observe: UpstreamObserver | undefined,
    lifecycle: Lifecycle | undefined,
    request: RequestObserver | undefined,
  ) {
    this.#request = request;
    this.#answer = answer;
    this.#method = method;
    this.#req = req;
    this.#res = res;
    this.#observe = observe;
    this.#lifecycle = lifecycle;
    // One listener function for every exchange (no closure per request): it finds its exchange on the response.
    (res as ExchangeResponse)[EXCHANGE] = this;
    res.on('close', onClientClose);
  }

  /** The client's response closed: if that was before the end of the answer, cancel upstream. */
  clientClosed(): void {
    if (this.#done || this.#res.writableFinished) return;
    this.#clientGone = true;
    // Before onConnect the request is still queued: onConnect aborts it.
    this.#abort?.(new ClientGoneError());
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.#clientGone) {
      abort(new ClientGoneError());
      return;
    }
    this.#abort = abort;
    if (this.bodyStallMs > 0) this.#watchBody(this.bodyStallMs);
  }

  /**
   * undici bounds the wait for the answer's head once the request is sent, but not a request body that
   * stops coming: a client that stalls mid upload would hold the upstream connection for ever. As on
   * the native relay, no byte of it for `ms` ends the exchange (a 502), whether the client stopped
   * sending or the upstream stopped taking it. Progress is read off the client socket's byte count: a
   * 'data' listener of our own would set the body flowing before undici reads it.
   */
  #watchBody(ms: number): void {
    const req = this.#req;
    const socket = req.socket;
    let seen = socket.bytesRead;
    let since = performance.now();
    this.#stallWatch = setInterval(
      () => {
        if (this.#done || req.complete) return this.#stopWatch();
        if (socket.bytesRead !== seen) {
          seen = socket.bytesRead;
          since = performance.now();
        } else if (performance.now() - since >= ms) {
          this.#stopWatch();
          this.#abort?.(new UpstreamError('UND_ERR_REQ_BODY_TIMEOUT', `no part of the request body went upstream for ${ms / 1000} s`));
        }
      },
      Math.max(10, ms / 4),
    );
    this.#stallWatch.unref();
  }

  #stopWatch(): void {
    if (this.#stallWatch !== null) clearInterval(this.#stallWatch);
    this.#stallWatch = null;
  }

  onHeaders(statusCode: number, rawHeaders: ReadonlyArray<string | Buffer>, resume: () => void): boolean {
    // 1xx interim answers (100 Continue, 103 Early Hints) are not relayed.
    if (statusCode < 200) return true;
    let out: string[] = [];
    let length = -1;
    let named: Set<string> | null = null;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = latin1(rawHeaders[i]!).toLowerCase();
      if (HOP_BY_HOP.has(name)) {
        if (name === 'connection') named = connectionNamed(latin1(rawHeaders[i + 1]!), named);
        continue;
      }
      const value = latin1(rawHeaders[i + 1]!);
      // The parser refused conflicting or malformed lengths; a repeated equal one reads the same.
      if (name === 'content-length') length = Number(value);
      out.push(name, value);
    }
    // Headers the upstream's Connection header names are hop-by-hop too (RFC 9110 §7.6.1), as Go's proxy drops them.
    if (named !== null) out = withoutNamed(out, named);
    const res = this.#res;
    // An answer that starts before the client's request body has all arrived (an upload refused early):
    // undici stops taking that body when the answer ends, so nothing would read the rest of it and the
    // client would hang mid upload on a connection that cannot serve another request. It is closed instead.
    if (this.#lifecycle?.closing || !this.#req.complete) res.shouldKeepAlive = false;
    this.#resume = resume;
    if (length >= 0) {
      this.#heldHead = out;
      this.#heldStatus = statusCode;
      this.#heldLength = length;
      this.#sized = true;
      return true;
    }
    // Streams without a length (SSE, long polls) get their headers now.
    res.writeHead(statusCode, out);
    res.flushHeaders();
    return true;
  }

  /** `release` (native relay, large answers): the chunk is lent from its pool; given back by node's write callback once written. */
  onData(chunk: Buffer, release?: () => void): boolean {
    const res = this.#res;
    if (this.#heldHead !== null && this.#heldBytes === 0 && chunk.length === this.#heldLength) {
      // The whole body: head and body in one call (the relay's onComplete follows at once).
      this.#writeHeldHead();
      this.#ended = true;
      res.end(chunk, release);
      return true;
    }
    if (this.#sized && !this.#awaitingDrain && res.writableLength === 0) {
      if (this.#held === null) this.#held = [chunk];
      else this.#held.push(chunk);
      if (release !== undefined || this.#heldRelease !== null) {
        this.#heldRelease ??= [];
        this.#heldRelease[this.#held.length - 1] = release;
      }
      this.#heldBytes += chunk.length;
      if (this.#heldBytes < HOLD_MAX_BYTES) {
        if (!this.#flushScheduled) {
          this.#flushScheduled = true;
          setImmediate(flushHeldBody, this);
        }
        return true;
      }
      return this.flushHeld();
    }
    if (this.#held !== null) this.flushHeld();
    this.#writeHeldHead();
    return this.#written(res.write(chunk, release));
  }

  /**
   * Writes the held head and body chunks in one `writev` (corked); false when the client's buffer is
   * full. Also the end of the turn's flush (`flushHeldBody`), where there is nobody to tell: the next
   * chunk then finds the buffer full and takes the backpressure way.
   */
  flushHeld(): boolean {
    this.#flushScheduled = false;
    const held = this.#held;
    if (held === null || this.#done) return true;
    const releases = this.#heldRelease;
    this.#held = null;
    this.#heldRelease = null;
    this.#heldBytes = 0;
    const res = this.#res;
    res.cork();
    this.#writeHeldHead();
    let ok = true;
    for (let i = 0; i < held.length; i++) ok = res.write(held[i]!, releases?.[i]);
    res.uncork();
    return this.#written(ok);
  }

  /** After a write: true to go on reading the upstream, false (with a drain awaited) to pause it. */
  #written(ok: boolean): boolean {
    const res = this.#res;
    if (ok) return true;
    // write() says false for any chunk over the high-water mark, even one the socket takes whole;
    // and node holds the head and first chunk (corked) until the next tick. Send them now: only bytes
    // still queued for the client are backpressure (else every 64 KiB answer would stop and restart
    // reading its upstream).
    const socket = res.socket;
    if (socket?.writableCorked) socket.uncork();
    if (res.writableLength === 0) return true;
    // The client's buffer is full: pause the upstream socket until it drains.
    // undici's resume function stays valid for the whole answer: it is called on every drain.
    this.#onDrain ??= () => {
      this.#awaitingDrain = false;
      this.#resume?.();
    };
    if (!this.#awaitingDrain) {
      this.#awaitingDrain = true;
      res.once('drain', this.#onDrain);
    }
    return false;
  }

  /** Writes a held head (see {@link #heldHead}); true when there was one. */
  #writeHeldHead(): boolean {
    if (this.#heldHead === null) return false;
    this.#res.writeHead(this.#heldStatus, this.#heldHead);
    this.#heldHead = null;
    return true;
  }

  onComplete(): void {
    this.#done = true;
    this.#stopWatch();
    const res = this.#res;
    const held = this.#held;
    this.#writeHeldHead();
    if (held !== null) {
      // Held chunks go out with the end: end() uncorks fully, so head, chunks and end are one writev.
      const releases = this.#heldRelease;
      this.#held = null;
      this.#heldRelease = null;
      this.#heldBytes = 0;
      res.cork();
      for (let i = 0; i < held.length; i++) res.write(held[i]!, releases?.[i]);
    }
    if (!this.#ended) res.end();
    this.#report();
  }

  onError(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#stopWatch();
    // Held chunks are dropped: the answer is cut either way (a 502 when its head was still held, as
    // nothing was sent; else the client's connection closes short of the announced length). Lent ones
    // are not given back: nothing is known about them, so they are left to the garbage collector.
    this.#held = null;
    this.#heldRelease = null;
    this.#heldBytes = 0;
    const res = this.#res;
    if (this.#onDrain) res.off('drain', this.#onDrain);
    this.#report(err);
    if (!res.headersSent && !res.destroyed) {
      const body = renderPage('Bad Gateway', 'Failed to connect to backend.');
      res.writeHead(502, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body);
    } else {
      res.destroy();
    }
  }

  /** Reports the exchange's end (answered, or failed with `err`) to both observers, with one reading of the clock. */
  #report(err?: unknown): void {
    const ended = performance.now();
    this.#observe?.(this.#answer, this.#method, (ended - this.#started) / 1000, err);
    const r = this.#request;
    if (r) r.observe(this.#method, this.#answer.metricHost ?? 'unknown', 'app', (ended - r.started) / 1000);
  }
}

/**
 * Streams the request to the upstream and the response back (502 page when the upstream cannot be
 * reached). Returns at once: the exchange runs on the relay's callbacks, never throws, and reports to
 * `observe` when it is over (answered, failed or cancelled).
 */
export function proxyHttp(
  pools: UpstreamPools,
  answer: ProxyAnswer,
  req: RelayClientRequest,
  res: ClientResponse,
  observe?: UpstreamObserver,
  lifecycle?: Lifecycle,
  request?: RequestObserver,
): void {
  const method = req.method ?? 'GET';
  const exchange = new ProxyExchange(answer, method, req, res, observe, lifecycle, request);
  // Only node's IncomingMessage ever has a body: the front end hands requests with one to node's server.
  const body = requestHasBody(req) ? (req as IncomingMessage) : null;
  if (pools.plain !== null && answer.origin.startsWith('http:')) {
    pools.plain.get(answer.origin).dispatch(method, answer.path, answer.headers, body, exchange, answer.block);
    return;
  }
  if (body !== null) exchange.bodyStallMs = pools.bodyStallMs;
  const pool = pools.get(answer.origin, answer.provider.config.internal_host_ssl_validation);
  // The raw handler interface (marked deprecated in the types) is the one undici's own request API
  // implements: it skips the controller wrapper and the parsed-headers object of the new interface.
  pool.dispatch(
    { method: method as 'GET', path: answer.path, headers: upstreamHeaders(answer), body },
    exchange as never,
  );
}

/** Every header a proxied request carries upstream, as one object (for undici, which takes no prepared block). */
export function upstreamHeaders(answer: ProxyAnswer): Record<string, string | string[]> {
  return answer.block ? answer.block.mergeInto(answer.headers) : answer.headers;
}

const CRLF = Buffer.from('\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

/**
 * One upgrade request (WebSocket, h2c, ...) as an undici dispatch handler: a 101 splices the client's
 * socket to the upstream's; any other answer (an app refusing the WebSocket with a 403, or an app
 * that ignores `Upgrade: h2c` and answers 200) is relayed as an ordinary response, as Go's reverse
 * proxy does, then the client connection is closed. A client socket closed during the handshake
 * (the shutdown grace ending) cancels the upstream request; after a 101, the upstream socket is
 * closed with the client's.
 */
class UpgradeExchange {
  readonly #socket: Duplex;
  readonly #protocol: string;
  readonly #head: Buffer;
  /** Whether an answer without a length may be sent chunked (an HTTP/1.1 client, not a HEAD). */
  readonly #chunkable: boolean;
  #chunked = false;
  #abort: ((err?: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  #answered = false;
  #done = false;

  constructor(socket: Duplex, protocol: string, head: Buffer, chunkable: boolean) {
    this.#socket = socket;
    this.#protocol = protocol;
    this.#head = head;
    this.#chunkable = chunkable;
    socket.once('close', () => {
      if (!this.#done) this.#abort?.(new ClientGoneError());
    });
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.#socket.destroyed) {
      abort(new ClientGoneError());
      return;
    }
    this.#abort = abort;
  }

  onUpgrade(_statusCode: number, rawHeaders: Buffer[], upstream: Duplex): void {
    this.#done = true;
    const socket = this.#socket;
    if (socket.destroyed) {
      upstream.destroy();
      return;
    }
    // The protocol the upstream switched to (a client may offer several: "h2c, websocket").
    let chosen = this.#protocol;
    const lines: string[] = [];
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toString('latin1');
      const lower = name.toLowerCase();
      if (lower === 'upgrade') chosen = rawHeaders[i + 1]!.toString('latin1');
      if (lower === 'connection' || lower === 'upgrade') continue;
      lines.push(`${name}: ${rawHeaders[i + 1]!.toString('latin1')}`);
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${chosen}\r\nConnection: Upgrade\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`);
    if (this.#head.length > 0) upstream.write(this.#head);
    socket.on('error', () => upstream.destroy());
    socket.once('close', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
    upstream.pipe(socket);
    socket.pipe(upstream);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true;
    this.#answered = true;
    this.#resume = resume;
    const lines = [`HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode] ?? 'Status'}`];
    let sized = false;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toString('latin1');
      const lower = name.toLowerCase();
      // The body is relayed as undici decoded it.
      if (HOP_BY_HOP.has(lower)) continue;
      if (lower === 'content-length') sized = true;
      lines.push(`${name}: ${rawHeaders[i + 1]!.toString('latin1')}`);
    }
    // A body without a length is sent chunked: delimited by the end of the connection, an upstream
    // failing mid body would look to the client like the end of a complete answer.
    this.#chunked = !sized && this.#chunkable && statusCode !== 204 && statusCode !== 304;
    if (this.#chunked) lines.push('Transfer-Encoding: chunked');
    lines.push('Connection: close');
    this.#socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    const data = this.#chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'), chunk, CRLF]) : chunk;
    if (this.#socket.write(data)) return true;
    this.#socket.once('drain', () => this.#resume?.());
    return false;
  }

  onComplete(): void {
    this.#done = true;
    endUpgradeSocket(this.#socket, this.#chunked ? LAST_CHUNK : undefined);
  }

  onError(): void {
    if (this.#done) return;
    this.#done = true;
    const socket = this.#socket;
    if (this.#answered || socket.destroyed) socket.destroy();
    else writeRawResponse(socket, 502, 'text/html; charset=utf-8', renderPage('Bad Gateway', 'Failed to connect to backend.'), []);
  }
}

/** Proxies a WebSocket (or other Upgrade) request: handshake through undici, then splice the sockets (see {@link UpgradeExchange}). */
export function proxyUpgrade(pools: UpstreamPools, answer: ProxyAnswer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  // node parses no body on an upgrade request: whatever follows its head (curl's `--http2 -d` sends a
  // POST with Upgrade: h2c) comes in `head` and on the socket, as if it were the new protocol already.
  // A sized body is cut from there and sent on (an upstream that answers normally would else get an
  // empty POST); a chunked one cannot be told apart from what follows it without decoding it, so it is
  // refused rather than lost.
  if (req.headers['transfer-encoding'] !== undefined) {
    writeRawResponse(socket, 411, 'text/plain; charset=utf-8', 'Length Required: an upgrade request with a body needs a Content-Length.', []);
    return;
  }
  const length = Number(req.headers['content-length'] ?? 0);
  let body: Buffer | PassThrough | null = null;
  let rest = head;
  if (length > 0 && head.length >= length) {
    body = head.subarray(0, length);
    rest = head.subarray(length);
  } else if (length > 0) {
    body = upgradeBodyFromSocket(socket, head, length);
    rest = Buffer.alloc(0);
  }
  const pool = pools.get(answer.origin, answer.provider.config.internal_host_ssl_validation);
  const protocol = String(req.headers.upgrade ?? 'websocket');
  pool.dispatch(
    { path: answer.path, method: (req.method ?? 'GET') as 'GET', headers: upstreamHeaders(answer), upgrade: protocol, body },
    new UpgradeExchange(socket, protocol, rest, req.httpVersion === '1.1' && req.method !== 'HEAD'),
  );
}

/** The body of an upgrade request whose first `head.length` bytes came with its head: the rest is read off the socket, and what follows it is left there. */
function upgradeBodyFromSocket(socket: Duplex, head: Buffer, length: number): PassThrough {
  const body = new PassThrough();
  body.write(head);
  let left = length - head.length;
  const onData = (chunk: Buffer): void => {
    if (chunk.length < left) {
      left -= chunk.length;
      if (!body.write(chunk)) {
        socket.pause();
        body.once('drain', () => socket.resume());
      }
      return;
    }
    socket.off('data', onData);
    socket.pause();
    if (chunk.length > left) socket.unshift(chunk.subarray(left));
    body.end(chunk.subarray(0, left));
  };
  socket.on('data', onData);
  return body;
}

/** Writes a complete HTTP/1.1 response on a raw socket (used for upgrade requests that are refused). */
export function writeRawResponse(socket: Duplex, status: number, contentType: string, body: string, headers: Array<[string, string]>): void {
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Status'}`, `Content-Type: ${contentType}`, `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'];
  for (const [k, v] of headers) lines.push(`${k}: ${v}`);
  endUpgradeSocket(socket, `${lines.join('\r\n')}\r\n\r\n${body}`);
}

/** How long a client socket of an upgrade request answered normally may stay half open after our end. */
export const HALF_OPEN_MS = 5_000;

/**
 * Ends the client socket of an upgrade request that was not switched. Node's HTTP server no longer
 * watches a socket it handed to 'upgrade' (no timeout), and keeps its read side open after our end:
 * a client that never closes its side (anyone, even unauthenticated: the refusal is such an answer)
 * would hold the socket for ever. It is destroyed once idle that long (a client still reading the
 * answer keeps it alive; destroying at once could reset an answer not read yet).
 */
function endUpgradeSocket(socket: Duplex, last?: string | Buffer): void {
  if (last === undefined) socket.end();
  else socket.end(last);
  const s = socket as Duplex & { setTimeout?: (ms: number, cb: () => void) => void };
  s.setTimeout?.(HALF_OPEN_MS, () => socket.destroy());
}
