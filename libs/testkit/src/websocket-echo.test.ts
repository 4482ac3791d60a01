// Tests of the raw WebSocket echo: handshake refusal, ping/pong, fragmented messages and the masking rule.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { closeServer, listen } from './http-server.ts';
import { acceptWebSocketEcho } from './websocket-echo.ts';

async function startEcho(t: Test) {
  const server = createServer((_req, res) => res.end());
  server.on('upgrade', (req, socket, head) => acceptWebSocketEcho(req, socket, head));
  const port = await listen(server, 0, '127.0.0.1');
  t.teardown(() => closeServer(server));
  return port;
}

function maskedFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] ?? 0)));
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payload.length]), mask, masked]);
}

/** Opens a raw socket, performs the handshake, returns the socket and a reader of bytes after the 101. */
async function openRaw(port: number, key = 'dGhlIHNhbXBsZSBub25jZQ==') {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  let data = Buffer.alloc(0);
  socket.on('data', (c: Buffer) => {
    data = Buffer.concat([data, c]);
  });
  socket.write(
    `GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  const waitFor = async (n: number) => {
    for (let i = 0; i < 200 && data.length < n; i++) await new Promise((r) => setTimeout(r, 5));
    return data;
  };
  await waitFor(1);
  for (let i = 0; i < 200 && !data.includes('\r\n\r\n'); i++) await new Promise((r) => setTimeout(r, 5));
  const headEnd = data.indexOf('\r\n\r\n') + 4;
  const head = data.subarray(0, headEnd).toString();
  data = data.subarray(headEnd);
  return { socket, head, waitFor, take: () => data };
}

t.test('the handshake answers 101 with the RFC 6455 accept value', async (t) => {
  const port = await startEcho(t);
  const raw = await openRaw(port);
  t.teardown(() => raw.socket.destroy());
  t.match(raw.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  // The example key and accept value from RFC 6455 §1.3.
  t.match(raw.head, 'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  t.equal(createHash('sha1').update('dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64'), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
});

t.test('an upgrade without a WebSocket key is refused with 400', async (t) => {
  const port = await startEcho(t);
  const socket = connect({ host: '127.0.0.1', port });
  t.teardown(() => socket.destroy());
  socket.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  const reply = await new Promise<string>((resolve) => socket.once('data', (c: Buffer) => resolve(c.toString())));
  t.match(reply, /^HTTP\/1\.1 400 /);
});

t.test('ping gets a pong with the same payload, and a fragmented text message is echoed whole', async (t) => {
  const port = await startEcho(t);
  const raw = await openRaw(port);
  t.teardown(() => raw.socket.destroy());
  raw.socket.write(maskedFrame(0x9, Buffer.from('p1')));
  t.same([...(await raw.waitFor(4)).subarray(0, 4)], [0x8a, 2, 0x70, 0x31], 'pong "p1"');
  raw.socket.write(Buffer.concat([maskedFrame(0x1, Buffer.from('hel'), false), maskedFrame(0x0, Buffer.from('lo'))]));
  const after = await raw.waitFor(4 + 7);
  t.same([...after.subarray(4, 6)], [0x81, 5]);
  t.equal(after.subarray(6, 11).toString(), 'hello');
});

t.test('an unmasked client frame closes the connection with 1002', async (t) => {
  const port = await startEcho(t);
  const raw = await openRaw(port);
  t.teardown(() => raw.socket.destroy());
  raw.socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69]));
  const frame = await raw.waitFor(4);
  t.same([...frame.subarray(0, 2)], [0x88, 2], 'a close frame');
  t.equal(frame.readUInt16BE(2), 1002);
});
