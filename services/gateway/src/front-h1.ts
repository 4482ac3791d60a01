// The plain-HTTP listener's front end (HOT): simple keep-alive GET/HEAD requests served off the socket with node's llhttp; any other request hands its connection to node's http.Server.
//
// Why: node's http.Server costs about a third of a small proxied request's CPU (its IncomingMessage,
// ServerResponse and header bookkeeping per request; bench/README.md, issue 6), and nearly all traffic
// through an identity-aware proxy is keep-alive GETs (forward-auth subrequests, page loads). Those
// are read here with the parser node's own server uses (strict, no lenient flags) and answered by a
// FrontResponse that writes the bytes node's ServerResponse would (Date, Connection, Keep-Alive,
// Content-Length or chunked framing, nothing for HEAD/204/304). Everything else (request bodies,
// HTTP/1.0, `Connection: close`, upgrades, Expect, heads split over reads, anything the parser refuses)
// is handed to node's own connection handling at that request's first byte, so node answers it, and
// every later request on that connection, exactly as it did before this file existed.
import type { IncomingHttpHeaders, Server } from 'node:http';
import { IncomingMessage, STATUS_CODES } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { IncomingRequest } from './request-context.ts';
import type { ClientResponse, RelayClientRequest } from './upstream.ts';

/** Node's llhttp binding in request mode, as node's own server uses it (`_http_common`). */
interface RequestParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  close(): void;
  [callback: number]: unknown;
}
interface RequestParserClass {
  new (): RequestParser;
  REQUEST: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kLenientNone: number;
}
interface HttpCommon {
  HTTPParser?: RequestParserClass;
  methods?: string[];
  _checkIsHttpToken?: (name: string) => boolean;
  _checkInvalidHeaderChar?: (value: string) => boolean;
}
type AddHeaderLine = (this: { joinDuplicateHeaders: boolean }, name: string, value: string, dest: IncomingHttpHeaders) => void;

interface Natives {
  Parser: RequestParserClass;
  get: number;
  head: number;
  isToken: (name: string) => boolean;
  badValue: (value: string) => boolean;
  addHeaderLine: AddHeaderLine;
}

/** What the front end needs from node's internals, checked at load; null on a node shaped otherwise (node's server then serves everything). */
function loadNatives(): Natives | null {
  try {
    const common = createRequire(import.meta.url)('_http_common') as HttpCommon;
    const P = common.HTTPParser;
    const addHeaderLine = (IncomingMessage.prototype as unknown as { _addHeaderLine?: AddHeaderLine })._addHeaderLine;
    if (typeof P !== 'function' || !Array.isArray(common.methods) || typeof addHeaderLine !== 'function') return null;
    if (typeof common._checkIsHttpToken !== 'function' || typeof common._checkInvalidHeaderChar !== 'function') return null;
    const keys = ['REQUEST', 'kOnHeaders', 'kOnHeadersComplete', 'kLenientNone'] as const;
    if (!keys.every((k) => typeof P[k] === 'number')) return null;
    const natives: Natives = {
      Parser: P,
      get: common.methods.indexOf('GET'),
      head: common.methods.indexOf('HEAD'),
      isToken: common._checkIsHttpToken,
      badValue: common._checkInvalidHeaderChar,
      addHeaderLine,
    };
    return behavesAsExpected(natives) ? natives : null;
  } catch {
    return null;
  }
}

/**
 * Parses two pipelined requests (the first with more header lines than the parser hands over at
 * once) the way {@link FrontConnection} does, and builds a header object: a node whose internals
 * changed shape fails here, at load, and keeps node's server for every request instead of misreading one.
 */
function behavesAsExpected(n: Natives): boolean {
  const parser = new n.Parser();
  parser.initialize(n.Parser.REQUEST, {}, 0, n.Parser.kLenientNone);
  const seen: string[] = [];
  let parts: string[] = [];
  let url = '';
  // As FrontConnection: no message-begin, body or message-complete callback (the parser skips them).
  parser[n.Parser.kOnHeaders] = (headers: string[], u: string) => {
    for (const h of headers) parts.push(h);
    url += u;
  };
  parser[n.Parser.kOnHeadersComplete] = (major: number, minor: number, headers: string[] | undefined, method: number, u: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean) => {
    const all = headers ?? parts;
    const target = u ?? url;
    parts = [];
    url = '';
    const dest: IncomingHttpHeaders = {};
    for (let i = 0; i < all.length; i += 2) n.addHeaderLine.call(NO_JOIN, all[i]!, all[i + 1]!, dest);
    seen.push(`${major}.${minor} ${method === n.get ? 'GET' : method === n.head ? 'HEAD' : '?'} ${target} ${upgrade} ${keepAlive} ${dest.host} ${dest.cookie} ${dest['x-39']}`);
    return 2;
  };
  const many = Array.from({ length: 40 }, (_, i) => `X-${i}: v${i}\r\n`).join('');
  const first = `GET /a?b HTTP/1.1\r\nHost: one\r\nhost: two\r\nCookie: a=1\r\ncookie: b=2\r\n${many}\r\n`;
  const second = 'HEAD /c HTTP/1.1\r\nHost: h\r\n\r\n';
  const bytes = Buffer.from(first + second, 'latin1');
  const one = parser.execute(bytes);
  const two = typeof one === 'number' ? parser.execute(bytes.subarray(one)) : one;
  parser.close();
  return (
    one === first.length &&
    two === second.length &&
    seen.join('|') === '1.1 GET /a?b false true one a=1; b=2 v39|1.1 HEAD /c false true h undefined undefined'
  );
}

const NO_JOIN = { joinDuplicateHeaders: false };
const NATIVES = loadNatives();
/** False on a node whose internals differ from what this file reads: node's server then takes every connection. */
export const frontEndAvailable = NATIVES !== null;

/** Bytes a client may send ahead (pipelined) while an answer is under way before its socket is paused. */
const AHEAD_LIMIT = 128 * 1024;
/** Node's server keeps this many header lines of a request (`maxHeadersCount`'s default). */
const MAX_HEADER_LINES = 2000;
/** How often idle connections are checked against the keep-alive timeout. */
const SWEEP_MS = 1000;

/** One request the front end serves: the gateway's view of it, and the relay's (it never has a body). */
export class FrontRequest implements IncomingRequest, RelayClientRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly peer: string;
  readonly encrypted = false;
  readonly complete = true;
  readonly socket: Socket;

  constructor(method: string, url: string, headers: IncomingHttpHeaders, socket: Socket, peer: string) {
    this.method = method;
    this.url = url;
    this.headers = headers;
    this.socket = socket;
    this.peer = peer;
  }

  /** A front-end request never has a body (any request with one goes to node's server). */
  readBody(): Promise<string> {
    return Promise.resolve('');
  }
}

/** How the front end hands a request to the gateway: answer it on `res` (now or later). */
export type FrontServe = (req: FrontRequest, res: FrontResponse) => void;

/** The server's settings the front end follows (read from node's server at each connection). */
interface FrontSettings {
  keepAliveTimeout: number;
  headersTimeout: number;
  /** 0: node's default (`--max-http-header-size`). */
  maxHeaderSize: number;
}

/**
 * Takes a node http.Server's connections: each is served here until its first request this file does
 * not take (see the file comment), then handed to the server's own connection listener with the bytes
 * of that request, as if it had just connected. `accepts(url)` may send more requests to node
 * (the gateway sends the ones fastify must route).
 */
export class FrontEnd {
  readonly #server: Server;
  readonly #serve: FrontServe;
  readonly #accepts: (url: string) => boolean;
  readonly #nodeListeners: Array<(socket: Socket) => void>;
  readonly connections = new Set<FrontConnection>();
  #sweep: NodeJS.Timeout | null = null;

  constructor(server: Server, serve: FrontServe, accepts: (url: string) => boolean) {
    this.#server = server;
    this.#serve = serve;
    this.#accepts = accepts;
    this.#nodeListeners = server.listeners('connection') as Array<(socket: Socket) => void>;
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => this.#accept(socket));
    server.once('close', () => this.#stopSweep());
  }

  #accept(socket: Socket): void {
    if (NATIVES === null) {
      this.handOff(socket);
      return;
    }
    const server = this.#server;
    const settings: FrontSettings = {
      keepAliveTimeout: server.keepAliveTimeout,
      headersTimeout: server.headersTimeout,
      // Set by http.createServer's option (not in @types/node's Server).
      maxHeaderSize: (server as Server & { maxHeaderSize?: number }).maxHeaderSize ?? 0,
    };
    this.connections.add(new FrontConnection(this, NATIVES, socket, settings));
    if (this.#sweep === null) {
      this.#sweep = setInterval(() => this.#closeExpired(), SWEEP_MS);
      this.#sweep.unref();
    }
  }

  /** Node's server takes `socket` from here on (its connection listener, as if the socket had just connected). */
  handOff(socket: Socket): void {
    for (const listener of this.#nodeListeners) listener.call(this.#server, socket);
  }

  serve(req: FrontRequest, res: FrontResponse): void {
    this.#serve(req, res);
  }

  accepts(url: string): boolean {
    return this.#accepts(url);
  }

  /** Closes the front end's connections with no answer under way (node's `closeIdleConnections` for these). */
  closeIdle(): void {
    for (const c of this.connections) if (c.idle) c.socket.destroy();
  }

  /** Closes every front-end connection, answers under way or not (node's `closeAllConnections` for these). */
  closeAll(): void {
    for (const c of this.connections) c.socket.destroy();
  }

  #closeExpired(): void {
    const now = performance.now();
    for (const c of this.connections) if (c.expired(now)) c.socket.destroy();
    if (this.connections.size === 0) this.#stopSweep();
  }

  #stopSweep(): void {
    if (this.#sweep !== null) clearInterval(this.#sweep);
    this.#sweep = null;
  }
}

/** One client connection while the front end serves it: one request at a time, in order. */
class FrontConnection {
  readonly socket: Socket;
  readonly #front: FrontEnd;
  readonly #n: Natives;
  readonly #settings: FrontSettings;
  readonly #parser: RequestParser;
  #peer: string | undefined;
  /** Header lines and URL the parser handed over before the head's end (more than 32 lines). */
  #parts: string[] = [];
  #url = '';
  /** Set by the parser's head callback for a request this file serves (null: hand the connection off). */
  #admitted: FrontRequest | null = null;
  /** The answer under way, if any. */
  #current: FrontResponse | null = null;
  /** Bytes that came while an answer was under way: they start at a request boundary. */
  #ahead: Buffer | null = null;
  #paused = false;
  /** Inside {@link #drive}: an answer ending there lets the loop take the next request (no recursion). */
  #driving = false;
  #driveQueued = false;
  readonly #driveLater = () => {
    this.#driveQueued = false;
    if (this.#current === null && !this.#driving && !this.#handedOff) this.#drive();
  };
  #handedOff = false;
  /** When the connection last had no request in progress (performance.now()), and whether one was ever served. */
  #idleSince = performance.now();
  #served = false;
  readonly #onData = (chunk: Buffer) => this.#received(chunk);
  readonly #onEnd = () => this.#ended();
  readonly #onClose = () => this.#closed();
  readonly #onDrain = () => this.#current?.drained();
  readonly #onError = () => this.socket.destroy();

  constructor(front: FrontEnd, natives: Natives, socket: Socket, settings: FrontSettings) {
    this.#front = front;
    this.#n = natives;
    this.#settings = settings;
    this.socket = socket;
    const P = natives.Parser;
    const parser = new P();
    // As node's server: its header limit (a head over it is refused here, so node answers it 431), no lenient flags.
    parser.initialize(P.REQUEST, {}, settings.maxHeaderSize, P.kLenientNone);
    // No message-begin, body or message-complete callback: the parser skips what is not a function (two
    // calls into JavaScript less per request), and a head is all this file reads.
    parser[P.kOnHeaders] = (headers: string[], url: string) => {
      for (const h of headers) this.#parts.push(h);
      this.#url += url;
    };
    parser[P.kOnHeadersComplete] = (
      major: number,
      minor: number,
      headers: string[] | undefined,
      method: number,
      url: string | undefined,
      _status: unknown,
      _message: unknown,
      upgrade: boolean,
      keepAlive: boolean,
    ): number => {
      let lines = headers;
      let target = url;
      if (lines === undefined || target === undefined) {
        // The parser handed over this head's lines (and target) in parts as it went (more than 32 lines).
        lines = this.#parts;
        target = this.#url;
        this.#parts = [];
        this.#url = '';
      }
      this.#admitted = this.#admit(major, minor, lines, method, target, upgrade, keepAlive);
      // 2: stop at the end of this head (it is served, or handed off, before any byte after it is read).
      return 2;
    };
    this.#parser = parser;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onClose);
    socket.on('drain', this.#onDrain);
    socket.on('error', this.#onError);
  }

  /** No answer under way or still being sent, no request begun: closing it loses nothing. */
  get idle(): boolean {
    return this.#current === null && this.#ahead === null && this.socket.writableLength === 0;
  }

  /** Idle for longer than the keep-alive timeout (before its first request: the headers timeout). */
  expired(now: number): boolean {
    if (!this.idle) return false;
    const limit = this.#served ? this.#settings.keepAliveTimeout : this.#settings.headersTimeout;
    return limit > 0 && now - this.#idleSince >= limit;
  }

  get peer(): string {
    this.#peer ??= this.socket.remoteAddress ?? '';
    return this.#peer;
  }

  /** The request in `major.minor`, `method`, ... if this file serves it, else null (node's server will). */
  #admit(major: number, minor: number, lines: string[], method: number, url: string, upgrade: boolean, keepAlive: boolean): FrontRequest | null {
    const n = this.#n;
    if (major !== 1 || minor !== 1 || !keepAlive || upgrade || (method !== n.get && method !== n.head)) return null;
    // More header lines than node's server keeps (it drops the rest): node's server reads it.
    if (!this.#front.accepts(url) || lines.length > MAX_HEADER_LINES * 2) return null;
    const headers: IncomingHttpHeaders = {};
    for (let i = 0; i < lines.length; i += 2) n.addHeaderLine.call(NO_JOIN, lines[i]!, lines[i + 1]!, headers);
    // A body (even announced for a GET), an Expect, an Upgrade offer: node's server handles those; and
    // no Host, which it refuses (400, `requireHostHeader`).
    const length = headers['content-length'];
    if ((length !== undefined && length !== '0') || headers['transfer-encoding'] !== undefined || headers.expect !== undefined || headers.upgrade !== undefined) return null;
    if (headers.host === undefined) return null;
    return new FrontRequest(method === n.get ? 'GET' : 'HEAD', url, headers, this.socket, this.peer);
  }

  #received(chunk: Buffer): void {
    if (this.#current !== null || this.#ahead !== null) {
      this.#ahead = this.#ahead === null ? chunk : Buffer.concat([this.#ahead, chunk]);
      if (this.#ahead.length > AHEAD_LIMIT && !this.#paused) {
        this.#paused = true;
        this.socket.pause();
      }
      if (this.#current === null && !this.#driving) this.#drive();
      return;
    }
    this.#ahead = chunk;
    this.#drive();
  }

  /** Serves the requests in {@link #ahead}, one at a time, until one is under way, handed off, or the bytes end. */
  #drive(): void {
    this.#driving = true;
    try {
      while (this.#ahead !== null && this.#current === null && !this.#handedOff && !this.socket.destroyed) {
        const bytes = this.#ahead;
        this.#admitted = null;
        const parsed = this.#parser.execute(bytes);
        const req = this.#admitted as FrontRequest | null;
        // A refused head, one this file does not serve, or one not complete in these bytes: node's
        // server gets the connection from this request's first byte on.
        if (typeof parsed !== 'number' || req === null) {
          this.#handOff(bytes);
          return;
        }
        this.#ahead = parsed < bytes.length ? bytes.subarray(parsed) : null;
        if (this.#paused && (this.#ahead === null || this.#ahead.length <= AHEAD_LIMIT)) {
          this.#paused = false;
          this.socket.resume();
        }
        this.#served = true;
        const res = new FrontResponse(this, this.socket, req.method === 'HEAD', this.#settings.keepAliveTimeout);
        this.#current = res;
        this.#front.serve(req, res);
      }
      if (this.#ahead === null && this.#current === null) this.#idleSince = performance.now();
    } finally {
      this.#driving = false;
    }
  }

  /** `res` has written its last byte: on to the next request, or close the connection after it. */
  answered(res: FrontResponse, last: boolean): void {
    if (this.#current !== res) return;
    this.#current = null;
    if (last) {
      this.#ahead = null;
      this.socket.end();
      return;
    }
    if (this.#driving) return;
    if (this.#ahead === null) {
      this.#idleSince = performance.now();
      return;
    }
    // Pipelined requests: the next once the caller (the upstream relay's callback, say) has returned.
    if (!this.#driveQueued) {
      this.#driveQueued = true;
      queueMicrotask(this.#driveLater);
    }
  }

  #handOff(bytes: Buffer): void {
    this.#handedOff = true;
    this.#ahead = null;
    this.#detach();
    const socket = this.socket;
    this.#front.handOff(socket);
    // Node's server reads a paused socket only once resumed.
    if (this.#paused) socket.resume();
    // What node's server would have read first: this request's bytes (and what came after them), given
    // as the socket's own event, synchronously, so before anything the socket reads next. (A client's
    // FIN comes after its bytes, and ends a front-end connection with nothing left to hand off.)
    socket.emit('data', bytes);
  }

  #detach(): void {
    this.#front.connections.delete(this);
    const socket = this.socket;
    socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('close', this.#onClose);
    socket.off('drain', this.#onDrain);
    socket.off('error', this.#onError);
    this.#parser.close();
  }

  /**
   * The client closed its side. As node's server (without `httpAllowHalfOpen`): requests not answered
   * yet are dropped and the connection is ended, so an answer under way is cut and its upstream request
   * cancelled (by the close that follows).
   */
  #ended(): void {
    this.#ahead = null;
    this.socket.end();
  }

  #closed(): void {
    const res = this.#current;
    this.#current = null;
    this.#ahead = null;
    this.#detach();
    res?.closed();
  }
}

/** `Date` lines, as node's server sends them, built once per second. */
let dateLine = '';
let dateUntil = 0;
function currentDateLine(): string {
  const now = Date.now();
  if (now >= dateUntil) {
    dateLine = `Date: ${new Date(now).toUTCString()}\r\n`;
    dateUntil = now - (now % 1000) + 1000;
  }
  return dateLine;
}

const LAST_CHUNK = '0\r\n\r\n';
/** Bodies up to this size are copied behind their head into one buffer (one write); larger ones are written as they are (one writev). */
const COPY_BODY_BYTES = 2048;

type HeaderInput = ReadonlyArray<string> | Readonly<Record<string, string | number | ReadonlyArray<string>>>;

/**
 * Header lines for a {@link FrontResponse}, each name and value checked as node's `writeHead` checks
 * them (a bad one throws, naming the header), serialized, with the framing headers node's server looks
 * for (names in any case) noted. Built once for an answer whose headers repeat (a session's
 * forward-auth answer), per answer otherwise.
 */
export class HeadLines {
  lines = '';
  date = false;
  connection = false;
  /** The Connection header said close. */
  closeAsked = false;
  length = false;
  encoding = false;
  chunked = false;
  /** A Keep-Alive header of the answer's own (node then sends none). */
  keepAlive = false;

  constructor(headers: HeaderInput) {
    if (Array.isArray(headers)) {
      const flat = headers as ReadonlyArray<string>;
      if (flat.length % 2 !== 0) throw new TypeError('headers must be name/value pairs');
      for (let i = 0; i < flat.length; i += 2) this.#add(flat[i]!, flat[i + 1]);
    } else {
      const record = headers as Readonly<Record<string, string | number | ReadonlyArray<string>>>;
      for (const name in record) {
        const value = record[name]!;
        if (Array.isArray(value)) for (const v of value as ReadonlyArray<string>) this.#add(name, v);
        else this.#add(name, value as string | number);
      }
    }
  }

  #add(name: string, value: string | number | undefined): void {
    const n = NATIVES!;
    if (typeof name !== 'string' || name === '' || !n.isToken(name)) throw new TypeError(`Header name must be a valid HTTP token ["${name}"]`);
    if (value === undefined) throw new TypeError(`Invalid value "undefined" for header "${name}"`);
    const v = typeof value === 'string' ? value : String(value);
    if (n.badValue(v)) throw new TypeError(`Invalid character in header content ["${name}"]`);
    this.lines += `${name}: ${v}\r\n`;
    if (name.length < 4 || name.length > 17) return;
    switch (name.toLowerCase()) {
      case 'date':
        this.date = true;
        break;
      case 'connection':
        this.connection = true;
        if (/(?:^|\W)close(?:$|\W)/i.test(v)) this.closeAsked = true;
        break;
      case 'content-length':
        this.length = true;
        break;
      case 'transfer-encoding':
        this.encoding = true;
        if (/(?:^|\W)chunked(?:$|\W)/i.test(v)) this.chunked = true;
        break;
      case 'keep-alive':
        this.keepAlive = true;
        break;
    }
  }
}

const NO_LINES = new HeadLines([]);

/**
 * The answer to one front-end request, with the subset of node's ServerResponse the gateway uses (the
 * answer writer and the upstream relay). It sends what node's ServerResponse sends for the same calls
 * on an HTTP/1.1 keep-alive request: the head as given, then `Date` unless given, `Connection:
 * keep-alive` with `Keep-Alive: timeout=N` (or `Connection: close` when `shouldKeepAlive` is false)
 * unless a Connection header was given, and, without a Content-Length or Transfer-Encoding header,
 * `Content-Length` when `end(body)` comes before anything was written, else chunked framing; HEAD
 * requests and 204/304 answers send no body bytes. Header names and values are checked as node checks
 * them (a bad one throws from `writeHead`, nothing sent).
 */
export class FrontResponse implements ClientResponse {
  shouldKeepAlive = true;
  statusMessage = '';
  headersSent = false;
  writableFinished = false;
  readonly socket: Socket;
  readonly #conn: FrontConnection;
  readonly #keepAliveTimeout: number;
  #hasBody: boolean;
  #status = 0;
  /** The header lines given to writeHead. */
  #h: HeadLines = NO_LINES;
  #written = false;
  #chunked = false;
  #last = false;
  /** cork() calls not yet undone: end() undoes them, as node's ServerResponse does (the relay corks, writes, then ends). */
  #corked = 0;
  #onClose: ((this: ClientResponse) => void) | null = null;
  #onDrain: Array<() => void> | null = null;

  constructor(conn: FrontConnection, socket: Socket, head: boolean, keepAliveTimeout: number) {
    this.#conn = conn;
    this.socket = socket;
    this.#hasBody = !head;
    this.#keepAliveTimeout = keepAliveTimeout;
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  writeHead(status: number, headers?: HeaderInput): this {
    return this.writeHeadLines(status, headers === undefined ? NO_LINES : new HeadLines(headers));
  }

  /** {@link writeHead} with header lines checked and serialized before (see {@link HeadLines}; a session's answer keeps its own). */
  writeHeadLines(status: number, lines: HeadLines): this {
    if (this.#written || this.#status !== 0) throw new Error('writeHead called twice for one answer');
    if (!Number.isInteger(status) || status < 100 || status > 999) throw new RangeError(`Invalid status code: ${status}`);
    this.statusMessage ||= STATUS_CODES[status] ?? 'unknown';
    if (NATIVES!.badValue(this.statusMessage)) throw new TypeError('Invalid character in statusMessage');
    this.#status = status;
    this.#h = lines;
    this.#chunked = lines.chunked;
    if (status === 204 || status === 304 || status < 200) this.#hasBody = false;
    return this;
  }

  /** The head as it goes out; `bodyLength`: the whole body's length when it goes with the head, else -1. */
  #head(bodyLength: number): string {
    if (this.#status === 0) this.writeHead(200);
    const h = this.#h;
    let head = `HTTP/1.1 ${this.#status} ${this.statusMessage}\r\n${h.lines}`;
    if (!h.date) head += currentDateLine();
    if (h.closeAsked) this.#last = true;
    if (!h.connection) {
      if (this.shouldKeepAlive) {
        head += 'Connection: keep-alive\r\n';
        if (this.#keepAliveTimeout > 0 && !h.keepAlive) head += `Keep-Alive: timeout=${Math.floor(this.#keepAliveTimeout / 1000)}\r\n`;
      } else {
        this.#last = true;
        head += 'Connection: close\r\n';
      }
    }
    if (!h.length && !h.encoding) {
      if (!this.#hasBody) this.#chunked = false;
      else if (bodyLength >= 0) head += `Content-Length: ${bodyLength}\r\n`;
      else {
        head += 'Transfer-Encoding: chunked\r\n';
        this.#chunked = true;
      }
    }
    this.headersSent = true;
    return `${head}\r\n`;
  }

  flushHeaders(): void {
    if (this.headersSent || !this.socket.writable) return;
    this.socket.write(this.#head(-1), 'latin1');
  }

  write(chunk: Buffer, cb?: () => void): boolean {
    if (this.writableFinished) throw new Error('write after end');
    const socket = this.socket;
    if (!socket.writable) {
      // The connection is ending (the client closed its side): nothing more goes out.
      if (cb) process.nextTick(cb);
      return true;
    }
    if (!this.headersSent) socket.write(this.#head(-1), 'latin1');
    this.#written = true;
    if (!this.#hasBody || chunk.length === 0) {
      if (cb) process.nextTick(cb);
      return true;
    }
    if (!this.#chunked) return socket.write(chunk, cb);
    socket.cork();
    socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    socket.write(chunk, cb);
    const ok = socket.write('\r\n', 'latin1');
    socket.uncork();
    return ok;
  }

  end(chunk?: Buffer | string, cb?: () => void): this {
    if (this.writableFinished) return this;
    this.writableFinished = true;
    const socket = this.socket;
    if (!socket.writable) {
      if (cb) process.nextTick(cb);
      this.#uncorkAll();
      this.#conn.answered(this, true);
      return this;
    }
    const size = chunk === undefined ? 0 : typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (!this.headersSent) {
      // Everything in one write: the head, and a whole body sent with it.
      const head = this.#head(this.#written ? -1 : size);
      if (!this.#hasBody || size === 0) {
        socket.write(this.#chunked && this.#hasBody ? head + LAST_CHUNK : head, 'latin1', cb);
      } else if (this.#chunked) {
        socket.cork();
        socket.write(`${head}${size.toString(16)}\r\n`, 'latin1');
        socket.write(chunk!, cb);
        socket.write(`\r\n${LAST_CHUNK}`, 'latin1');
        socket.uncork();
      } else if (typeof chunk === 'string' || size <= COPY_BODY_BYTES) {
        const headBytes = head.length;
        const out = Buffer.allocUnsafe(headBytes + size);
        out.write(head, 0, 'latin1');
        if (typeof chunk === 'string') out.write(chunk, headBytes, 'utf8');
        else chunk!.copy(out, headBytes);
        socket.write(out, cb);
      } else {
        socket.cork();
        socket.write(head, 'latin1');
        socket.write(chunk!, cb);
        socket.uncork();
      }
    } else if (!this.#hasBody || size === 0) {
      if (this.#chunked && this.#hasBody) socket.write(LAST_CHUNK, 'latin1', cb);
      else if (cb) process.nextTick(cb);
    } else {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk!;
      if (this.#chunked) {
        socket.cork();
        socket.write(`${size.toString(16)}\r\n`, 'latin1');
        socket.write(bytes, cb);
        socket.write(`\r\n${LAST_CHUNK}`, 'latin1');
        socket.uncork();
      } else {
        socket.write(bytes, cb);
      }
    }
    this.#written = true;
    this.#uncorkAll();
    this.#conn.answered(this, this.#last || !this.shouldKeepAlive);
    return this;
  }

  #uncorkAll(): void {
    while (this.#corked > 0) {
      this.#corked--;
      this.socket.uncork();
    }
  }

  cork(): void {
    this.#corked++;
    this.socket.cork();
  }

  uncork(): void {
    if (this.#corked === 0) return;
    this.#corked--;
    this.socket.uncork();
  }

  destroy(): void {
    this.socket.destroy();
  }

  on(event: 'close', listener: (this: ClientResponse) => void): this {
    if (event !== 'close') throw new Error(`FrontResponse has no '${String(event)}' event`);
    this.#onClose = listener;
    return this;
  }

  once(event: 'drain', listener: () => void): this {
    if (event !== 'drain') throw new Error(`FrontResponse has no once('${String(event)}')`);
    if (this.#onDrain === null) this.#onDrain = [listener];
    else this.#onDrain.push(listener);
    return this;
  }

  off(event: 'drain', listener: () => void): this {
    const list = this.#onDrain;
    if (event === 'drain' && list !== null) {
      const i = list.indexOf(listener);
      if (i !== -1) list.splice(i, 1);
    }
    return this;
  }

  /** The socket drained: run the drain listeners once each. */
  drained(): void {
    const list = this.#onDrain;
    if (list === null || list.length === 0) return;
    this.#onDrain = null;
    for (const fn of list) fn();
  }

  /** The connection closed while this answer was under way. */
  closed(): void {
    this.#onClose?.call(this);
  }
}
