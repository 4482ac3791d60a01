// A lean keep-alive HTTP/1.1 probe over one socket (the sign-out scenario's instrument): a request out, the answer's status back.
import net from 'node:net';

/** What a probe got back: the status, and when the last byte of the answer was read (performance.now()). */
export interface ProbeAnswer {
  status: number;
  at: number;
}

/** A complete answer in `buf` from `start`: its status and where it ends, or null while incomplete. */
export function parseAnswer(buf: Buffer, start: number): { status: number; end: number; close: boolean } | null {
  const headEnd = buf.indexOf('\r\n\r\n', start, 'latin1');
  if (headEnd === -1) return null;
  const head = buf.toString('latin1', start, headEnd);
  const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*/.exec(head);
  if (!m) throw new Error(`not an HTTP/1.1 answer: ${JSON.stringify(head.slice(0, 40))}`);
  const status = Number(m[1]);
  let length: number | null = null;
  let chunked = false;
  let close = false;
  for (const line of head.slice(m[0].length + 2).split('\r\n')) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim().toLowerCase();
    if (name === 'content-length') length = Number(value);
    else if (name === 'transfer-encoding') chunked = value.split(',').at(-1)?.trim() === 'chunked';
    else if (name === 'connection') close = value.split(',').some((v) => v.trim() === 'close');
  }
  const bodyAt = headEnd + 4;
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return { status, end: bodyAt, close };
  if (chunked) {
    let at = bodyAt;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', at, 'latin1');
      if (lineEnd === -1) return null;
      const size = Number.parseInt(buf.toString('latin1', at, lineEnd), 16);
      if (!Number.isFinite(size)) throw new Error('bad chunk size in the answer');
      if (size === 0) {
        // No trailers expected: the last chunk ends with an empty line.
        return buf.length >= lineEnd + 4 ? { status, end: lineEnd + 4, close } : null;
      }
      at = lineEnd + 2 + size + 2;
      if (buf.length < at) return null;
    }
  }
  if (length === null || !Number.isInteger(length) || length < 0) throw new Error(`answer ${status} has no usable Content-Length and is not chunked`);
  return buf.length >= bodyAt + length ? { status, end: bodyAt + length, close } : null;
}

/**
 * One keep-alive connection to `127.0.0.1:port`, one request at a time. Lighter than an undici Pool
 * (no dispatcher, no body stream), so a measured round trip is mostly the server's and the kernel's.
 * Reconnects after an answer with `Connection: close` or a lost connection.
 */
export class RawProbe {
  #socket: net.Socket | null = null;
  #buf: Buffer = Buffer.alloc(0);
  #waiting: { resolve: (a: ProbeAnswer) => void; reject: (e: Error) => void } | null = null;

  constructor(private readonly port: number) {}

  /** Sends `GET path` with the given headers (a Host among them) and resolves with the answer's status. */
  get(path: string, headers: Record<string, string>): Promise<ProbeAnswer> {
    if (this.#waiting) return Promise.reject(new Error('RawProbe: one request at a time'));
    let text = `GET ${path} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(headers)) text += `${k}: ${v}\r\n`;
    text += '\r\n';
    return new Promise<ProbeAnswer>((resolve, reject) => {
      this.#waiting = { resolve, reject };
      this.#connected().write(text, 'latin1');
    });
  }

  close(): void {
    this.#socket?.destroy();
    this.#socket = null;
  }

  #connected(): net.Socket {
    if (this.#socket) return this.#socket;
    const socket = net.connect(this.port, '127.0.0.1');
    socket.setNoDelay(true);
    this.#buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      this.#read();
    });
    // Only the current connection's loss fails the request waiting (one closed after `Connection: close` is done with).
    const lost = (err?: Error) => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      this.#fail(err ?? new Error('connection closed before the answer'));
    };
    socket.on('error', lost);
    socket.on('close', () => lost());
    this.#socket = socket;
    return socket;
  }

  #read(): void {
    let parsed: ReturnType<typeof parseAnswer>;
    try {
      parsed = parseAnswer(this.#buf, 0);
    } catch (err) {
      this.close();
      this.#fail(err as Error);
      return;
    }
    if (!parsed) return;
    const at = performance.now();
    this.#buf = this.#buf.subarray(parsed.end);
    if (parsed.close) this.close();
    const w = this.#waiting;
    this.#waiting = null;
    w?.resolve({ status: parsed.status, at });
  }

  #fail(err: Error): void {
    const w = this.#waiting;
    this.#waiting = null;
    w?.reject(err);
  }
}
