// Plain-HTTP/1.1 upstream connections framed by node's own llhttp parser: a keep-alive pool per origin with no per-request stream, promise or timer (HOT).
//
// Why not undici here: relaying a small answer through undici costs ~25 % more CPU per request than
// the same relay over raw keep-alive sockets parsed by node's native llhttp (bench/README.md, issue 6),
// and proxy mode is CPU-bound by that relay. Heads are parsed, and framing decided, by the parser node's
// own HTTP client uses (close-delimited, 1xx, HEAD, 204/304, Content-Length/Transfer-Encoding
// conflicts), so this file mostly manages connections. Bodies go through the parser too, except on a
// kept-alive connection those that are sized (and not empty) or chunked: those are read here (counted out,
// or de-chunked by the strict ChunkedDecoder) into reusable buffers (BodySlabs) once the head is read.
// TLS upstreams, upgrades and traced processes keep undici.
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { type Socket, connect } from 'node:net';

/** What an exchange is told by the connection it runs on (the subset of undici's handler interface the relay implements). */
export interface RelayHandler {
  /** Called when the request is given a connection; `abort` cancels it (the handler then gets `onError(err)`). */
  onConnect(abort: (err?: Error) => void): void;
  /** The final answer's status and headers as [name, value, ...] strings (latin1, as sent); `resume` restarts a paused body. */
  onHeaders(statusCode: number, rawHeaders: ReadonlyArray<string | Buffer>, resume: () => void): boolean;
  /**
   * A body chunk; false pauses the upstream until `resume`. With `release`, the chunk is a pooled
   * buffer lent to the handler: it calls `release` once nothing will read the chunk any more (node's
   * write callback), and the buffer is reused for a later answer; a handler that never calls it keeps
   * the chunk for good (it is then simply garbage collected).
   */
  onData(chunk: Buffer, release?: () => void): boolean;
  onComplete(trailers: null): void;
  onError(err: Error): void;
}

/** Node's native HTTP parser (llhttp), as `_http_common` exposes it to node's own HTTP client. */
interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  finish(): undefined | Error;
  close(): void;
  [callback: number]: unknown;
}
interface NativeParserClass {
  new (): NativeParser;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kLenientNone: number;
}

function loadParser(): NativeParserClass | null {
  try {
    const { HTTPParser } = createRequire(import.meta.url)('_http_common') as { HTTPParser?: NativeParserClass };
    if (typeof HTTPParser !== 'function') return null;
    const keys = ['RESPONSE', 'kOnMessageBegin', 'kOnHeaders', 'kOnHeadersComplete', 'kOnBody', 'kOnMessageComplete', 'kLenientNone'] as const;
    return keys.every((k) => typeof HTTPParser[k] === 'number') && behavesAsExpected(HTTPParser) ? HTTPParser : null;
  } catch {
    return null;
  }
}

/**
 * Parses one small answer with the callbacks shaped as this file uses them (node 14+: the body as a
 * single Buffer argument, copied out of the bytes parsed, so the read buffer can be reused): a node
 * whose internals changed shape fails here, at load, and proxies through undici, instead of relaying
 * wrong bytes.
 */
function behavesAsExpected(P: NativeParserClass): boolean {
  const parser = new P();
  parser.initialize(P.RESPONSE, {}, 0, P.kLenientNone);
  let status = 0;
  let names = '';
  const chunks: unknown[] = [];
  let bodyArgs = 0;
  let complete = false;
  parser[P.kOnMessageBegin] = () => {};
  parser[P.kOnHeaders] = () => {};
  parser[P.kOnHeadersComplete] = (_major: number, _minor: number, headers: string[], _m: unknown, _u: unknown, code: number) => {
    status = code;
    names = String(headers);
    return 0;
  };
  parser[P.kOnBody] = (...args: unknown[]) => {
    bodyArgs = args.length;
    chunks.push(args[0]);
  };
  parser[P.kOnMessageComplete] = () => {
    complete = true;
  };
  const text = 'HTTP/1.1 203 X\r\nContent-Length: 5\r\n\r\nhello';
  const bytes = Buffer.from(text, 'latin1');
  const parsed = parser.execute(bytes);
  parser.close();
  // The next read overwrites the shared read buffer: a body chunk must not be a view into it.
  bytes.fill(0);
  const body = chunks.map((c) => (Buffer.isBuffer(c) ? c.toString('latin1') : '?')).join('');
  return parsed === text.length && status === 203 && names === 'Content-Length,5' && body === 'hello' && bodyArgs === 1 && complete;
}

/** Null on a node whose internals differ: every upstream then goes through undici (upstream.ts). */
const HTTPParser = loadParser();
export const nativeRelayAvailable = HTTPParser !== null;

/** Limits of the plain-HTTP pools (the undici pools' settings, so both paths behave alike). */
export interface H1Options {
  /** Open connections per origin; requests beyond wait in order. */
  maxConnections: number;
  /** How long an idle connection is kept when the upstream does not say (`Keep-Alive: timeout=N`). */
  idleMs: number;
  /** From the end of the request (its body sent) to the answer's head. */
  headersTimeoutMs: number;
  connectTimeoutMs: number;
  maxHeaderBytes: number;
}

/** Request header names (RFC 9110 token) and values (no CR, LF, NUL or other controls but tab). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const BAD_PATH = /[^\x21-\x7e\x80-\xff]/;
/** Header names already found valid (the same few dozen on every request; bounded). */
const VALID_NAMES = new Set<string>();
/** Methods whose bodyless requests still carry `Content-Length: 0` (some servers answer 411 without it). */
const EXPECTS_BODY = new Set(['POST', 'PUT', 'PATCH']);

/** Why an upstream exchange failed, for logs and the 502's cause. */
export class UpstreamError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'UpstreamError';
    this.code = code;
  }
}

/**
 * Headers many requests carry unchanged (a session's identity headers), checked and serialized once
 * (HOT: building and writing 12 identity headers one by one cost ~0.7 µs per proxied request).
 * Lower-case names. Shared between requests: never mutated.
 */
export class HeaderBlock {
  readonly pairs: ReadonlyArray<readonly [string, string]>;
  /** The pairs' names: a client header of one of these names is replaced, not sent along. */
  readonly names: ReadonlySet<string>;
  /** `name: value\r\n` per pair. */
  readonly #lines: string;
  /** Why the block cannot be sent (a name or value no request may carry), or null. */
  readonly #invalid: string | null;

  constructor(pairs: ReadonlyArray<readonly [string, string]>) {
    this.pairs = pairs;
    this.names = new Set(pairs.map(([name]) => name));
    let lines = '';
    let invalid: string | null = null;
    for (const [name, value] of pairs) {
      if (!TOKEN.test(name)) invalid ??= `invalid header name ${JSON.stringify(name)}`;
      else if (BAD_VALUE.test(value)) invalid ??= `invalid value of header ${name}`;
      lines += `${name}: ${value}\r\n`;
    }
    this.#lines = lines;
    this.#invalid = invalid;
  }

  /** The block as request-head lines, or undefined when a name or value cannot be sent (then {@link invalid} says why). */
  get lines(): string | undefined {
    return this.#invalid === null ? this.#lines : undefined;
  }

  get invalid(): string | null {
    return this.#invalid;
  }

  /** `headers` with the block's pairs added (for clients that take a header object: undici, upgrades); the block's names win. */
  mergeInto(headers: Record<string, string | string[]>): Record<string, string | string[]> {
    const merged: Record<string, string | string[]> = {};
    for (const name in headers) if (!this.names.has(name)) merged[name] = headers[name]!;
    for (const [name, value] of this.pairs) merged[name] = value;
    return merged;
  }
}

/** A request as written to the upstream: its head, and the client's body stream if any. */
interface Pending {
  head: string;
  isHead: boolean;
  body: IncomingMessage | null;
  chunked: boolean;
  handler: RelayHandler;
  /** GET, HEAD, OPTIONS or TRACE without a body: safe to send again (as Go's transport does). */
  replayable: boolean;
  /** Sent once already on a reused connection that the upstream had closed (retried at most once). */
  retried: boolean;
}

const REPLAYABLE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/**
 * Builds the request head (`headers`, then `block`'s lines), or returns the reason it cannot be sent
 * (a bad header from config or claims: never written). `block` holds no `host`, `content-length` or
 * `transfer-encoding` (its owner keeps those in `headers`), and `headers` none of its names.
 */
function requestHead(
  method: string,
  path: string,
  headers: Record<string, string | string[]>,
  hostOfOrigin: string,
  hasBody: boolean,
  block: HeaderBlock | undefined,
): { head: string; chunked: boolean } | string {
  if (path.length === 0 || BAD_PATH.test(path)) return 'invalid request target';
  const lines = block === undefined ? '' : block.lines;
  if (lines === undefined) return block!.invalid!;
  let head = `${method} ${path} HTTP/1.1\r\n`;
  let host = false;
  let sized = false;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (!VALID_NAMES.has(name)) {
      if (!TOKEN.test(name)) return `invalid header name ${JSON.stringify(name)}`;
      if (VALID_NAMES.size < 4096) VALID_NAMES.add(name);
    }
    // Only names as long as `host` (4) or `content-length` (14) can be either: no lower-casing for the rest.
    const lower = name.length === 4 || name.length === 14 ? name.toLowerCase() : '';
    if (lower === 'host') host = true;
    else if (lower === 'content-length') sized = true;
    if (typeof value === 'string') {
      if (BAD_VALUE.test(value)) return `invalid value of header ${name}`;
      head += `${name}: ${value}\r\n`;
    } else {
      for (const v of value) {
        if (BAD_VALUE.test(v)) return `invalid value of header ${name}`;
        head += `${name}: ${v}\r\n`;
      }
    }
  }
  head += lines;
  if (!host) head += `host: ${hostOfOrigin}\r\n`;
  const chunked = hasBody && !sized;
  if (chunked) head += 'transfer-encoding: chunked\r\n';
  else if (!hasBody && !sized && EXPECTS_BODY.has(method)) head += 'content-length: 0\r\n';
  return { head: `${head}\r\n`, chunked };
}

/**
 * The one buffer every upstream socket reads into (net's `onread`): no allocation per read, and the
 * parser copies out what outlives the read (header strings, body chunks; checked at load). Reads are
 * handled one at a time on this thread, each to its end before the next. 128 KiB: a 64 KiB answer with
 * its head comes in one read (with 64 KiB it took two, one more system call per answer).
 */
const READ_BUFFER = Buffer.allocUnsafe(128 * 1024);

/**
 * A sized answer of at least this many bytes has its body relayed by this file instead of the parser
 * (see {@link BodySlabs}): every non-empty one, since the parser's path costs two calls from native
 * code into JavaScript (body, end) and a new Buffer per answer, where this one copies the body into a
 * pooled buffer (small bodies) or a slab (large ones).
 */
const BYPASS_MIN_BYTES = 1;

/**
 * Body runs shorter than this go to the handler in node's pooled small buffers (`Buffer.allocUnsafe`
 * slices one 8 KiB allocation below 4 KiB), longer ones in slabs: a 64 KiB slab lent for a few bytes
 * would hold 64 KiB per slow client.
 */
const SLAB_MIN_BYTES = 4096;

/**
 * Reusable buffers for large sized bodies (HOT for large answers). The parser copies every body chunk
 * into a new Buffer; V8 counts those bytes as external memory of the young generation until a
 * scavenge frees them, and counts them against the old generation's limit meanwhile, so a stream of
 * 64 KiB answers kept starting full (mark-compact) collections of the whole heap: in the bench, at
 * times for minutes, the gateway needed twice the CPU per 64 KiB answer (GC helper threads ~100 µs per
 * answer). Copied into slabs that come back once written, the bytes are allocated once.
 */
class BodySlabs {
  static readonly SIZE = 64 * 1024;
  /** Slabs kept for reuse at most (4 MiB); a slab given back beyond that is left to the garbage collector. */
  static readonly KEEP = 64;
  readonly #free: Buffer[] = [];
  /** Slabs allocated so far (for tests: bounded when slabs come back). */
  allocated = 0;

  take(): Buffer {
    const slab = this.#free.pop();
    if (slab !== undefined) return slab;
    this.allocated++;
    return Buffer.allocUnsafeSlow(BodySlabs.SIZE);
  }

  /** A function giving `slab` back, once: a second call (a callback run twice) cannot hand it out twice. */
  releaser(slab: Buffer): () => void {
    let given = false;
    return () => {
      if (given) return;
      given = true;
      if (this.#free.length < BodySlabs.KEEP) this.#free.push(slab);
    };
  }
}

const BODY_SLABS = new BodySlabs();

enum Chunk {
  /** Hex digits of a chunk size (at least one). */
  Size,
  /** After the size's `;`: extensions (skipped), up to CR. */
  Extension,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  /** The start of a trailer line, or the CR of the empty line that ends the body. */
  TrailerStart,
  TrailerLine,
  TrailerLf,
  EndLf,
  Done,
}

/** The longest chunk-size line (size and extensions) and the most hex digits of a size accepted. */
const CHUNK_LINE_MAX = 4096;
const CHUNK_SIZE_DIGITS_MAX = 12;

/**
 * Reads the framing of a chunked body (RFC 9112 §7.1), strictly, as llhttp does without its lenient
 * flags: hex sizes followed by CRLF or `;` and extensions (skipped; no whitespace before the `;`), CRLF
 * only (a bare LF is refused), trailers skipped (bounded by the head limit). It never guesses: anything
 * else is an error naming what was wrong, so an answer is never taken for more or less than the upstream
 * sent (the next answer on the connection depends on it).
 */
class ChunkedDecoder {
  #state = Chunk.Size;
  #size = 0;
  #digits = 0;
  #lineBytes = 0;
  #trailerBytes = 0;
  readonly #maxTrailerBytes: number;

  constructor(maxTrailerBytes: number) {
    this.#maxTrailerBytes = maxTrailerBytes;
  }

  get done(): boolean {
    return this.#state === Chunk.Done;
  }

  /**
   * Reads `buf` from `at`: either a run of chunk data (`buf[at..dataEnd]`, then `next`), or framing up
   * to `next` (`dataEnd` = `at`: no data). An error is a string saying what was wrong.
   */
  step(buf: Buffer, at: number): { dataEnd: number; next: number } | string {
    if (this.#state === Chunk.Data) {
      const end = Math.min(buf.length, at + this.#size);
      this.#size -= end - at;
      if (this.#size === 0) this.#state = Chunk.DataCr;
      return { dataEnd: end, next: end };
    }
    let i = at;
    for (; i < buf.length && this.#state !== Chunk.Data && this.#state !== Chunk.Done; i++) {
      const c = buf[i]!;
      switch (this.#state) {
        case Chunk.Size: {
          const digit = hexValue(c);
          if (digit >= 0) {
            if (++this.#digits > CHUNK_SIZE_DIGITS_MAX) return 'chunk size too large';
            this.#size = this.#size * 16 + digit;
          } else if (this.#digits === 0) {
            return 'no chunk size';
          } else if (c === 0x0d) {
            this.#state = Chunk.SizeLf;
          } else if (c === 0x3b) {
            this.#state = Chunk.Extension;
          } else {
            return 'invalid character in chunk size';
          }
          break;
        }
        case Chunk.Extension:
          if (c === 0x0d) this.#state = Chunk.SizeLf;
          else if (c === 0x0a || (c < 0x20 && c !== 0x09) || c === 0x7f) return 'invalid character in chunk extension';
          break;
        case Chunk.SizeLf:
          if (c !== 0x0a) return 'chunk size line not ended by CRLF';
          this.#state = this.#size === 0 ? Chunk.TrailerStart : Chunk.Data;
          this.#digits = 0;
          this.#lineBytes = 0;
          break;
        case Chunk.DataCr:
          if (c !== 0x0d) return 'chunk data not followed by CRLF';
          this.#state = Chunk.DataLf;
          break;
        case Chunk.DataLf:
          if (c !== 0x0a) return 'chunk data not followed by CRLF';
          this.#state = Chunk.Size;
          break;
        case Chunk.TrailerStart:
          if (c === 0x0d) this.#state = Chunk.EndLf;
          else if (c === 0x0a) return 'trailer line not ended by CRLF';
          else this.#state = Chunk.TrailerLine;
          break;
        case Chunk.TrailerLine:
          if (c === 0x0d) this.#state = Chunk.TrailerLf;
          else if (c === 0x0a) return 'trailer line not ended by CRLF';
          break;
        case Chunk.TrailerLf:
          if (c !== 0x0a) return 'trailer line not ended by CRLF';
          this.#state = Chunk.TrailerStart;
          break;
        case Chunk.EndLf:
          if (c !== 0x0a) return 'chunked body not ended by CRLF';
          this.#state = Chunk.Done;
          break;
      }
      if ((this.#state === Chunk.Size || this.#state === Chunk.Extension || this.#state === Chunk.SizeLf) && ++this.#lineBytes > CHUNK_LINE_MAX) {
        return 'chunk size line too long';
      }
      if (this.#state >= Chunk.TrailerStart && this.#state <= Chunk.EndLf && ++this.#trailerBytes > this.#maxTrailerBytes) return 'trailers too large';
    }
    return { dataEnd: at, next: i };
  }
}

/** The value of an ASCII hex digit, or -1. */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** How many body slabs the relay has allocated so far (tests: it stays bounded when they are given back). */
export function bodySlabsAllocated(): number {
  return BODY_SLABS.allocated;
}

/** One keep-alive connection to an origin; runs one request at a time. */
class H1Connection {
  readonly #origin: H1Origin;
  readonly socket: Socket;
  readonly #parser: NativeParser;
  readonly #resume = () => {
    if (!this.dead && this.current !== null) this.socket.resume();
  };
  /** The request on this connection (null while idle). */
  current: Pending | null = null;
  /** When an idle connection is to be dropped, or when the current request's answer head is due. */
  deadline = 0;
  dead = false;
  connected = false;
  /** Answers completed on this connection (a reused connection may have been closed by the upstream meanwhile). */
  #served = 0;
  #gotBytes = false;
  #answered = false;
  #interim = false;
  #keepAlive = false;
  #bodySent = true;
  #idleMs: number;
  #headerParts: string[] = [];
  #lastError: Error | null = null;
  #releaseAfterParse = false;
  #parsing = false;
  #bodyCleanup: (() => void) | null = null;
  /** Bytes of the current answer's body still to come, when this file relays it rather than the parser (0: the parser's path). */
  #bodyLeft = 0;
  /** The current answer's chunked body, when this file relays it rather than the parser (null: the parser's path). */
  #chunked: ChunkedDecoder | null = null;
  /** Inside the handler's onConnect, and the abort it asked for there (see `start`). */
  #starting = false;
  #abortedAtStart: Error | null = null;

  constructor(origin: H1Origin) {
    this.#origin = origin;
    this.#idleMs = origin.options.idleMs;
    const socket = connect({
      host: origin.hostname,
      port: origin.port,
      noDelay: true,
      onread: { buffer: READ_BUFFER, callback: (length: number, buffer: Uint8Array) => this.#onRead(buffer as Buffer, length) },
    });
    this.socket = socket;
    this.deadline = performance.now() + origin.options.connectTimeoutMs;
    socket.once('connect', () => {
      this.connected = true;
      if (this.current) this.deadline = performance.now() + origin.options.headersTimeoutMs;
    });
    const P = HTTPParser!;
    const parser = new P();
    parser.initialize(P.RESPONSE, {}, origin.options.maxHeaderBytes, P.kLenientNone);
    parser[P.kOnMessageBegin] = () => {
      // Bytes after a complete answer, or while idle: the upstream is out of step; never reuse.
      if (this.current === null || this.#releaseAfterParse) this.#poison();
      // The last answer's trailers came through kOnHeaders too (dropped): never part of this head.
      this.#headerParts = [];
    };
    parser[P.kOnHeaders] = (headers: string[]) => {
      for (const h of headers) this.#headerParts.push(h);
    };
    parser[P.kOnHeadersComplete] = (
      _major: number,
      _minor: number,
      headers: string[] | undefined,
      _method: unknown,
      _url: unknown,
      status: number,
      _message: string,
      _upgrade: boolean,
      keepAlive: boolean,
    ): number => this.#onHeadersComplete(headers ?? this.#takeHeaderParts(), status, keepAlive);
    parser[P.kOnBody] = (chunk: Buffer) => {
      const p = this.current;
      if (p === null || this.dead || this.#interim) return;
      try {
        if (!p.handler.onData(chunk)) this.socket.pause();
      } catch (err) {
        this.#fail(err as Error);
      }
    };
    parser[P.kOnMessageComplete] = () => this.#onMessageComplete();
    this.#parser = parser;
    socket.on('end', () => this.#onEnd());
    socket.on('error', (err) => {
      this.#lastError = err;
    });
    socket.on('close', () => this.#onClose());
  }

  /** Sends `p` on this connection; false when its client had already gone (nothing sent, the connection is free again). */
  start(p: Pending): boolean {
    this.current = p;
    this.#gotBytes = false;
    this.#answered = false;
    this.#interim = false;
    this.#keepAlive = false;
    this.#bodyLeft = 0;
    this.#chunked = null;
    // The last answer may have ended while its client held the upstream paused.
    if (this.socket.isPaused()) this.socket.resume();
    this.#starting = true;
    p.handler.onConnect((err) => this.#abort(p, err));
    this.#starting = false;
    const gone = this.#abortedAtStart;
    if (gone !== null) {
      // The client left while its request waited for a connection: nothing was sent, so the connection stays good.
      this.#abortedAtStart = null;
      this.current = null;
      this.#notifyError(p, gone);
      return false;
    }
    // Only now: an idle connection keeps its keep-alive deadline when nothing was sent on it.
    this.deadline = performance.now() + (this.connected ? this.#origin.options.headersTimeoutMs : this.#origin.options.connectTimeoutMs);
    const socket = this.socket;
    socket.write(p.head, 'latin1');
    if (p.body === null) {
      this.#bodySent = true;
      return true;
    }
    this.#bodySent = false;
    this.#streamBody(p, p.body);
    return true;
  }

  /** Client body → upstream, chunk-encoded when the client sent no length, with backpressure both ways. */
  #streamBody(p: Pending, body: IncomingMessage): void {
    const socket = this.socket;
    const onDrain = () => body.resume();
    const onData = (chunk: Buffer) => {
      if (chunk.length === 0) return;
      let ok: boolean;
      if (p.chunked) {
        // One writev for the size line, the chunk and its CRLF.
        socket.cork();
        socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
        socket.write(chunk);
        ok = socket.write('\r\n', 'latin1');
        socket.uncork();
      } else {
        ok = socket.write(chunk);
      }
      // Progress: the wait starts again (a slow upload goes on; one that stops is cut below).
      this.#answerDue();
      if (!ok) {
        body.pause();
        socket.once('drain', onDrain);
      }
    };
    const onEnd = () => {
      cleanup();
      if (p.chunked) socket.write('0\r\n\r\n', 'latin1');
      this.#bodySent = true;
      this.#answerDue();
    };
    // The client left (or its body broke off) before the whole body came: the upstream request is cut.
    const onClose = () => {
      if (!body.complete && this.current === p) this.#fail(new UpstreamError('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'the client closed the connection before its request body was complete'));
    };
    const cleanup = () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('close', onClose);
      body.off('aborted', onClose);
      socket.off('drain', onDrain);
      this.#bodyCleanup = null;
    };
    this.#bodyCleanup = cleanup;
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('close', onClose);
    body.on('aborted', onClose);
    if (body.readableEnded) onEnd();
  }

  #onHeadersComplete(headers: string[], status: number, keepAlive: boolean): number {
    const p = this.current;
    if (p === null || this.dead) return 1;
    if (status < 200) {
      // 100 Continue / 103 Early Hints are not relayed (node answered 100 to the client itself); a 101
      // to a request that asked for no upgrade is the upstream out of step.
      if (status === 101) {
        this.#fail(new UpstreamError('UND_ERR_SOCKET', 'the upstream switched protocols on a request without Upgrade'));
        return 1;
      }
      this.#interim = true;
      return 1;
    }
    this.#answered = true;
    this.deadline = Number.POSITIVE_INFINITY; // the body may stream for as long as it takes
    this.#keepAlive = keepAlive;
    this.#idleMs = this.#origin.options.idleMs;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (name.length === 10 && name.toLowerCase() === 'keep-alive') this.#idleMs = keepAliveHint(headers[i + 1]!, this.#idleMs);
    }
    try {
      p.handler.onHeaders(status, headers, this.#resume);
    } catch (err) {
      this.#fail(err as Error);
      return 1;
    }
    // A HEAD answer announces a body it does not send.
    if (p.isHead) return 1;
    // A sized body on a kept-alive connection is relayed from the read buffer (see BodySlabs):
    // 2 makes the parser stop at the end of the head (as for an upgrade; `execute` then returns the
    // head's length and the parser is ready for the next answer). Without keep-alive the parser would
    // swallow the rest of the connection, so that answer keeps the parser's path.
    if (keepAlive && status !== 204 && status !== 304) {
      const length = sizedBodyLength(headers);
      if (length >= BYPASS_MIN_BYTES) {
        this.#bodyLeft = length;
        return 2;
      }
      // A chunked body (of any size: it is unknown) is decoded here too (ChunkedDecoder), so its data
      // reaches the handler in slabs or pooled buffers, never one new Buffer per chunk.
      if (length === -1 && isChunkedOnly(headers)) {
        this.#chunked = new ChunkedDecoder(this.#origin.options.maxHeaderBytes);
        return 2;
      }
    }
    return 0;
  }

  #onMessageComplete(): void {
    const p = this.current;
    if (p === null || this.dead) return;
    // The parser stopped at the head of a body this file relays: the answer ends with its last byte.
    if (this.#bodyLeft > 0 || this.#chunked !== null) return;
    if (this.#interim) {
      this.#interim = false;
      return;
    }
    this.#served++;
    this.current = null;
    const reusable = this.#keepAlive && this.#bodySent && !this.#origin.closed;
    // An answer that came before the whole request body: stop sending it; the connection is not reusable.
    this.#bodyCleanup?.();
    if (reusable) {
      // Handed on once the parser is done with this read (bytes after the answer must not reach the next request).
      if (this.#parsing) this.#releaseAfterParse = true;
      else this.#origin.release(this);
    }
    try {
      p.handler.onComplete(null);
    } catch {
      // The handler owns its errors; the connection stays sound.
    }
    if (!reusable) this.destroy();
  }

  /** `length` bytes read into the shared buffer; false stops reading (the client asked for a pause meanwhile). */
  #onRead(buffer: Buffer, length: number): boolean {
    this.#onData(buffer.subarray(0, length));
    return !this.socket.isPaused();
  }

  #onData(chunk: Buffer): void {
    if (this.dead) return;
    if (this.current === null && !this.#releaseAfterParse) {
      this.#poison();
      return;
    }
    this.#gotBytes = true;
    if (this.#bodyLeft > 0) {
      this.#relayBody(chunk, 0);
      return;
    }
    if (this.#chunked !== null) {
      this.#relayChunked(chunk, 0);
      return;
    }
    this.#parsing = true;
    const result = this.#parser.execute(chunk);
    this.#parsing = false;
    if (result instanceof Error) {
      this.#fail(new UpstreamError('UND_ERR_PARSE', `the upstream's answer is not valid HTTP/1.1 (${(result as Error & { reason?: string }).reason ?? result.message})`));
      return;
    }
    if (this.#bodyLeft > 0) {
      // The parser stopped at the end of a head whose body this file relays: the rest of the read is body.
      if (result < chunk.length) this.#relayBody(chunk, result);
      return;
    }
    if (this.#chunked !== null) {
      if (result < chunk.length) this.#relayChunked(chunk, result);
      return;
    }
    if (this.#releaseAfterParse) {
      this.#releaseAfterParse = false;
      if (!this.dead) this.#origin.release(this);
    }
  }

  /**
   * Relays `chunk[from..]` as body of the current answer (at most the bytes still due), copied out of
   * the shared read buffer into pooled slabs lent to the handler; completes the answer with its last
   * byte. Bytes after it in the same read are the upstream out of step: the connection is not reused.
   */
  #relayBody(chunk: Buffer, from: number): void {
    const p = this.current;
    if (p === null || this.dead) return;
    const end = from + Math.min(this.#bodyLeft, chunk.length - from);
    this.#bodyLeft -= end - from;
    const more = this.#deliver(p, chunk, from, end);
    if (more === null) return;
    if (this.#bodyLeft > 0) {
      if (!more) this.socket.pause();
      return;
    }
    if (end < chunk.length) this.#keepAlive = false;
    this.#onMessageComplete();
  }

  /**
   * Relays the chunked body in `chunk[from..]`: framing read by the decoder, data copied out as by
   * {@link deliver}; completes the answer at the end of its trailers (dropped). Framing the decoder
   * refuses is an error (never a guess), and bytes after the answer in the same read mean the upstream
   * is out of step: the connection is not reused.
   */
  #relayChunked(chunk: Buffer, from: number): void {
    const p = this.current;
    const decoder = this.#chunked;
    if (p === null || this.dead || decoder === null) return;
    let more = true;
    let at = from;
    while (at < chunk.length && !decoder.done) {
      const step = decoder.step(chunk, at);
      if (typeof step === 'string') {
        this.#fail(new UpstreamError('UND_ERR_PARSE', `the upstream's chunked answer is not valid HTTP/1.1 (${step})`));
        return;
      }
      if (step.dataEnd > at) {
        const delivered = this.#deliver(p, chunk, at, step.dataEnd);
        if (delivered === null) return;
        if (!delivered) more = false;
      }
      at = step.next;
    }
    if (!decoder.done) {
      if (!more) this.socket.pause();
      return;
    }
    this.#chunked = null;
    if (at < chunk.length) this.#keepAlive = false;
    this.#onMessageComplete();
  }

  /**
   * Hands `chunk[from..end]` (in the shared read buffer) to the handler as body: large runs copied into
   * pooled slabs lent to it, small ones into node's pooled small buffers (neither is a new external
   * allocation per chunk). False when the handler asked for a pause; null when the exchange is over
   * (failed, or ended by the handler: its client left).
   */
  #deliver(p: Pending, chunk: Buffer, from: number, end: number): boolean | null {
    let more = true;
    for (let at = from; at < end; ) {
      const n = Math.min(BodySlabs.SIZE, end - at);
      try {
        if (n < SLAB_MIN_BYTES) {
          const copy = Buffer.allocUnsafe(n);
          chunk.copy(copy, 0, at, at + n);
          if (!p.handler.onData(copy)) more = false;
        } else {
          const slab = BODY_SLABS.take();
          chunk.copy(slab, 0, at, at + n);
          if (!p.handler.onData(n === BodySlabs.SIZE ? slab : slab.subarray(0, n), BODY_SLABS.releaser(slab))) more = false;
        }
      } catch (err) {
        this.#fail(err as Error);
        return null;
      }
      at += n;
      if (this.current !== p || this.dead) return null;
    }
    return more;
  }

  /** The upstream ended its side: a close-delimited answer is complete, anything else in flight is cut. */
  #onEnd(): void {
    if (this.current !== null && !this.dead && (this.#bodyLeft > 0 || this.#chunked !== null)) {
      this.#fail(new UpstreamError('UND_ERR_SOCKET', 'the upstream closed the connection before its answer was complete'));
      return;
    }
    if (this.current !== null && !this.dead) {
      const result = this.#parser.finish();
      if (result instanceof Error && this.current !== null) this.#fail(new UpstreamError('UND_ERR_SOCKET', 'the upstream closed the connection before its answer was complete'));
    }
    this.destroy();
  }

  #onClose(): void {
    this.dead = true;
    // As node's own client does: the native parser is freed once no callback of it is on the stack.
    setImmediate(() => this.#parser.close());
    this.#origin.forget(this);
    const p = this.current;
    if (p === null) return;
    this.current = null;
    this.#bodyCleanup?.();
    // A reused connection that the upstream closed (its idle timeout raced this request) before any
    // byte of an answer: a replayable request is sent once more on a new connection.
    if (this.#served > 0 && !this.#gotBytes && p.replayable && !p.retried) {
      p.retried = true;
      this.#origin.send(p, true);
      return;
    }
    const cause = this.#lastError;
    const err = cause ?? new UpstreamError('UND_ERR_SOCKET', 'the upstream closed the connection before its answer was complete');
    this.#notifyError(p, err);
  }

  /** Headers delivered in parts (more than 32 header lines, or a head split across reads). */
  #takeHeaderParts(): string[] {
    const parts = this.#headerParts;
    this.#headerParts = [];
    return parts;
  }

  /** Ends the current request with `err` (502 before the answer's head, a cut connection after) and drops the connection. */
  #fail(err: Error): void {
    const p = this.current;
    this.current = null;
    this.#bodyCleanup?.();
    this.destroy();
    if (p !== null) this.#notifyError(p, err);
  }

  #abort(p: Pending, err?: Error): void {
    if (this.current !== p) return;
    const reason = err ?? new UpstreamError('UND_ERR_ABORTED', 'request aborted');
    if (this.#starting) this.#abortedAtStart ??= reason;
    else this.#fail(reason);
  }

  #notifyError(p: Pending, err: Error): void {
    try {
      p.handler.onError(err);
    } catch {
      // The handler owns its errors.
    }
  }

  /** Bytes the upstream sent with no request to answer: close, so they never reach a later request. */
  #poison(): void {
    this.#releaseAfterParse = false;
    if (this.current !== null) this.#fail(new UpstreamError('UND_ERR_SOCKET', 'the upstream sent more than one answer'));
    else this.destroy();
  }

  /** Whether the current request has waited too long, or an idle connection outlived its keep-alive. */
  expired(now: number): boolean {
    return now > this.deadline;
  }

  /** Called by the sweep when `deadline` has passed. */
  timeout(): void {
    if (this.current === null) {
      this.destroy();
      return;
    }
    if (!this.connected) this.#fail(new UpstreamError('UND_ERR_CONNECT_TIMEOUT', `connecting to ${this.#origin.hostname}:${this.#origin.port} timed out`));
    else if (this.#answered) return;
    // While the request body is still going upstream, the wait starts again with every chunk (a large
    // upload over a slow link outlasts the headers timeout): only a body that stopped coming, or an
    // upstream that stopped taking it, for that long ends the request.
    else if (this.#bodySent || this.socket.writableNeedDrain) this.#fail(new UpstreamError('UND_ERR_HEADERS_TIMEOUT', `the upstream sent no answer within ${this.#origin.options.headersTimeoutMs / 1000} s`));
    else this.#fail(new UpstreamError('UND_ERR_REQ_BODY_TIMEOUT', `the client sent no part of its request body for ${this.#origin.options.headersTimeoutMs / 1000} s`));
  }

  /** The next thing (the answer's head, or more of the request body) is due within the headers timeout from now. */
  #answerDue(): void {
    if (this.connected && !this.#answered) this.deadline = performance.now() + this.#origin.options.headersTimeoutMs;
  }

  /** Marks this connection idle until its keep-alive runs out. */
  idle(now: number): void {
    this.deadline = now + this.#idleMs;
    // Reading on while idle is how an upstream's close (or stray bytes) is noticed before reuse.
    if (this.socket.isPaused()) this.socket.resume();
  }

  get idleMs(): number {
    return this.#idleMs;
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    this.socket.destroy();
    this.#origin.forget(this);
  }
}

/**
 * The Content-Length of an answer's head as [name, value, ...] (the parser refused malformed and
 * conflicting lengths), or -1 when it has none or also names a Transfer-Encoding.
 */
function sizedBodyLength(headers: string[]): number {
  let length = -1;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 14 && name.toLowerCase() === 'content-length') length = Number(headers[i + 1]);
    else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return -1;
  }
  return Number.isSafeInteger(length) && length >= 0 ? length : -1;
}

/** Whether an answer's only framing is `Transfer-Encoding: chunked` (one such header, no other coding, no Content-Length). */
function isChunkedOnly(headers: string[]): boolean {
  let chunked = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 14 && name.toLowerCase() === 'content-length') return false;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      if (chunked || headers[i + 1]!.trim().toLowerCase() !== 'chunked') return false;
      chunked = true;
    }
  }
  return chunked;
}

/** `Keep-Alive: timeout=N`: the upstream closes idle connections after N s, so reuse stops 1 s before (as undici does). */
function keepAliveHint(value: string, fallback: number): number {
  const m = /(?:^|[\s,])timeout\s*=\s*(\d+)/i.exec(value);
  if (!m) return fallback;
  return Math.min(fallback, Number(m[1]) * 1000 - 1000);
}

/** The connections to one origin: idle ones reused last-in first-out, requests beyond the limit queued in order. */
class H1Origin {
  readonly hostname: string;
  readonly port: number;
  readonly host: string;
  readonly options: H1Options;
  readonly #idle: H1Connection[] = [];
  readonly #all = new Set<H1Connection>();
  readonly #queue: Pending[] = [];
  #sweep: NodeJS.Timeout | null = null;
  closed = false;
  #onIdle: (() => void) | null = null;

  constructor(origin: string, options: H1Options) {
    const url = new URL(origin);
    this.hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.port = url.port === '' ? 80 : Number(url.port);
    this.host = url.host;
    this.options = options;
  }

  dispatch(
    method: string,
    path: string,
    headers: Record<string, string | string[]>,
    body: IncomingMessage | null,
    handler: RelayHandler,
    block?: HeaderBlock,
  ): void {
    const built = requestHead(method, path, headers, this.host, body !== null, block);
    if (typeof built === 'string') {
      handler.onError(new UpstreamError('UND_ERR_INVALID_ARG', built));
      return;
    }
    this.send({ head: built.head, isHead: method === 'HEAD', body, chunked: built.chunked, handler, replayable: body === null && REPLAYABLE.has(method), retried: false }, false);
  }

  /** Runs `p` on an idle connection, a new one (`fresh`: always a new one), or queues it. */
  send(p: Pending, fresh: boolean): void {
    if (this.closed) {
      p.handler.onError(new UpstreamError('UND_ERR_DESTROYED', 'the gateway is shutting down'));
      return;
    }
    if (!fresh) {
      const now = performance.now();
      let conn = this.#idle.pop();
      while (conn !== undefined && (conn.dead || conn.expired(now))) {
        conn.destroy();
        conn = this.#idle.pop();
      }
      if (conn !== undefined) {
        // Its client gone, nothing was sent: the connection goes back as it was, without a new keep-alive
        // period (the upstream's idle timer still runs from the last answer). Nothing waits in the queue
        // while a connection is idle.
        if (!conn.start(p)) this.#idle.push(conn);
        return;
      }
    }
    if (this.#all.size >= this.options.maxConnections) {
      this.#queue.push(p);
      return;
    }
    const conn = new H1Connection(this);
    this.#all.add(conn);
    this.#sweep ??= setInterval(() => this.#expire(), 1000).unref();
    if (!conn.start(p)) this.release(conn);
  }

  /** A connection that finished an answer: next queued request, or idle. */
  release(conn: H1Connection): void {
    // Queued requests whose clients have gone are skipped (in a loop: a burst of them must not recurse).
    for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) {
      if (conn.start(next)) return;
    }
    if (conn.idleMs <= 0 || this.closed) {
      conn.destroy();
      return;
    }
    conn.idle(performance.now());
    this.#idle.push(conn);
  }

  /** A connection closed: it leaves the pool, and a queued request may take its place. */
  forget(conn: H1Connection): void {
    if (!this.#all.delete(conn)) return;
    const at = this.#idle.indexOf(conn);
    if (at !== -1) this.#idle.splice(at, 1);
    if (this.#queue.length > 0 && !this.closed) this.send(this.#queue.shift()!, true);
    if (this.#all.size === 0) {
      if (this.#sweep) clearInterval(this.#sweep);
      this.#sweep = null;
      this.#onIdle?.();
    }
  }

  #expire(): void {
    const now = performance.now();
    for (const conn of this.#all) if (conn.expired(now)) conn.timeout();
  }

  /** Stops taking requests, drops idle connections, and resolves once the busy ones are done. */
  close(): Promise<void> {
    this.closed = true;
    for (const p of this.#queue.splice(0)) p.handler.onError(new UpstreamError('UND_ERR_DESTROYED', 'the gateway is shutting down'));
    for (const conn of [...this.#idle]) conn.destroy();
    if (this.#all.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onIdle = resolve;
    });
  }

  /** Open connections (for tests). */
  get size(): number {
    return this.#all.size;
  }
}

/** The plain-HTTP origins of one gateway. */
export class H1Pools {
  readonly #origins = new Map<string, H1Origin>();
  readonly #options: H1Options;

  constructor(options: H1Options) {
    this.#options = options;
  }

  get(origin: string): H1Origin {
    let o = this.#origins.get(origin);
    if (!o) {
      o = new H1Origin(origin, this.#options);
      this.#origins.set(origin, o);
    }
    return o;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#origins.values()].map((o) => o.close()));
    this.#origins.clear();
  }
}
