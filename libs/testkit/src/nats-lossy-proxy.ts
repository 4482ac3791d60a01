// A TCP proxy in front of a real nats-server that can lose chosen messages on their way to the client (tests of readers that miss a delivery).
import { type Server, type Socket, connect, createServer } from 'node:net';

/** A message the server sends to a client (`MSG`/`HMSG`): its subject and reply subject. */
export interface ProxiedMessage {
  subject: string;
  reply: string;
}

export interface NatsLossyProxy {
  /** `nats://127.0.0.1:PORT`: connect clients here. */
  url: string;
  /** Drops the next message to any client for which `match` is true (once); resolves when it has been dropped. */
  dropNext(match: (m: ProxiedMessage) => boolean): Promise<ProxiedMessage>;
  close(): Promise<void>;
}

const CRLF = Buffer.from('\r\n');

/**
 * Splits the server's byte stream into protocol frames (a control line, plus the payload of
 * MSG/HMSG) and passes each on unless a pending drop matches it. Client-to-server bytes pass as is.
 */
export async function startNatsLossyProxy(serverPort: number): Promise<NatsLossyProxy> {
  const drops: Array<{ match: (m: ProxiedMessage) => boolean; done: (m: ProxiedMessage) => void }> = [];
  const sockets = new Set<Socket>();

  const relayFromServer = (upstream: Socket, client: Socket): void => {
    let pending: Buffer = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      for (;;) {
        const eol = pending.indexOf(CRLF);
        if (eol < 0) return;
        const line = pending.subarray(0, eol).toString('latin1');
        const parts = line.split(' ');
        let size = eol + 2;
        let message: ProxiedMessage | undefined;
        if (parts[0] === 'MSG' || parts[0] === 'HMSG') {
          // MSG <subject> <sid> [reply] <#bytes>; HMSG <subject> <sid> [reply] <#header bytes> <#total bytes>
          const fixed = parts[0] === 'MSG' ? 4 : 5;
          message = { subject: parts[1] ?? '', reply: parts.length > fixed ? (parts[3] ?? '') : '' };
          size += Number(parts[parts.length - 1]) + 2;
          if (pending.length < size) return;
        }
        const frame = pending.subarray(0, size);
        pending = pending.subarray(size);
        const drop = message ? drops.findIndex((d) => d.match(message)) : -1;
        if (drop >= 0 && message) drops.splice(drop, 1)[0]!.done(message);
        else client.write(frame);
      }
    });
  };

  const server: Server = createServer((client) => {
    const upstream = connect(serverPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    relayFromServer(upstream, client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `nats://127.0.0.1:${port}`,
    dropNext: (match) => new Promise((done) => drops.push({ match, done })),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
