// A minimal RFC 6455 WebSocket echo endpoint on a raw upgraded socket (handshake, framing, ping/pong, close).
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

const handshakeGuid = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
// Echoing is for small test messages; a bigger frame is a protocol misuse we refuse with 1009.
const maxMessageBytes = 1024 * 1024;

const Opcode = { Continuation: 0x0, Text: 0x1, Binary: 0x2, Close: 0x8, Ping: 0x9, Pong: 0xa } as const;

/** Options of {@link acceptWebSocketEcho}. */
export interface WebSocketEchoOptions {
  /** Extra response headers on the 101 (e.g. the upstream's name). */
  headers?: Record<string, string>;
  /** Answer to a text frame that is exactly "__request"; default: the frame is echoed like any other. */
  describeRequest?: () => string;
}

/**
 * Completes the WebSocket handshake for `req` on `socket` and echoes every text and binary message
 * back. Answers 400 and closes when the request is not a valid WebSocket upgrade.
 */
export function acceptWebSocketEcho(req: IncomingMessage, socket: Duplex, head: Buffer, opts: WebSocketEchoOptions = {}): void {
  const key = req.headers['sec-websocket-key'];
  const isWebSocket =
    req.method === 'GET' &&
    /\bwebsocket\b/i.test(req.headers.upgrade ?? '') &&
    typeof key === 'string' &&
    req.headers['sec-websocket-version'] === '13';
  if (!isWebSocket) {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }

  const accept = createHash('sha1').update(key + handshakeGuid).digest('base64');
  const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${accept}`];
  // Agree to the client's first subprotocol so proxies that pass Sec-WebSocket-Protocol can be tested.
  const protocol = req.headers['sec-websocket-protocol']?.split(',')[0]?.trim();
  if (protocol) lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
  for (const [name, value] of Object.entries(opts.headers ?? {})) lines.push(`${name}: ${value}`);
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);

  let buffered: Buffer = head.length > 0 ? Buffer.from(head) : Buffer.alloc(0);
  let fragments: Buffer[] = [];
  let fragmentOpcode: number = Opcode.Text;
  let closed = false;

  const close = (code: number) => {
    if (closed) return;
    closed = true;
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code);
    socket.end(encodeFrame(Opcode.Close, payload));
  };

  const deliver = (opcode: number, payload: Buffer) => {
    if (opcode === Opcode.Text && opts.describeRequest && payload.toString('utf8') === '__request') {
      socket.write(encodeFrame(Opcode.Text, Buffer.from(opts.describeRequest(), 'utf8')));
      return;
    }
    socket.write(encodeFrame(opcode, payload));
  };

  const onData = (chunk: Buffer) => {
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    for (;;) {
      const frame = decodeFrame(buffered);
      if (frame === 'incomplete') return;
      if (frame === 'too-large') return close(1009);
      if (frame === 'unmasked') return close(1002); // RFC 6455 §5.1: clients must mask
      buffered = buffered.subarray(frame.length);
      if (closed) continue;
      switch (frame.opcode) {
        case Opcode.Text:
        case Opcode.Binary:
          if (frame.fin) deliver(frame.opcode, frame.payload);
          else {
            fragmentOpcode = frame.opcode;
            fragments = [frame.payload];
          }
          break;
        case Opcode.Continuation:
          fragments.push(frame.payload);
          if (fragments.reduce((n, b) => n + b.length, 0) > maxMessageBytes) return close(1009);
          if (frame.fin) {
            deliver(fragmentOpcode, Buffer.concat(fragments));
            fragments = [];
          }
          break;
        case Opcode.Ping:
          socket.write(encodeFrame(Opcode.Pong, frame.payload));
          break;
        case Opcode.Pong:
          break;
        case Opcode.Close:
          close(frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1000);
          break;
        default:
          return close(1002);
      }
    }
  };

  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
  if (buffered.length) onData(Buffer.alloc(0));
}

type DecodedFrame = { fin: boolean; opcode: number; payload: Buffer; length: number };

function decodeFrame(data: Buffer): DecodedFrame | 'incomplete' | 'too-large' | 'unmasked' {
  if (data.length < 2) return 'incomplete';
  const first = data[0] ?? 0;
  const second = data[1] ?? 0;
  if ((second & 0x80) === 0) return 'unmasked';
  let offset = 2;
  let length = second & 0x7f;
  if (length === 126) {
    if (data.length < 4) return 'incomplete';
    length = data.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (data.length < 10) return 'incomplete';
    const big = data.readBigUInt64BE(2);
    if (big > BigInt(maxMessageBytes)) return 'too-large';
    length = Number(big);
    offset = 10;
  }
  if (length > maxMessageBytes) return 'too-large';
  if (data.length < offset + 4 + length) return 'incomplete';
  const mask = data.subarray(offset, offset + 4);
  const payload = Buffer.from(data.subarray(offset + 4, offset + 4 + length));
  for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] ?? 0) ^ (mask[i % 4] ?? 0);
  return { fin: (first & 0x80) !== 0, opcode: first & 0x0f, payload, length: offset + 4 + length };
}

/** Encodes one unmasked, final server frame. */
function encodeFrame(opcode: number, payload: Buffer): Buffer {
  let header: Buffer;
  if (payload.length < 126) {
    header = Buffer.from([0x80 | opcode, payload.length]);
  } else if (payload.length < 0x10000) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([header, payload]);
}
