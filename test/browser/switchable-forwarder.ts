// A TCP forwarder whose target can be switched, so one browser origin can be served by either gateway replica.
import { type Server, type Socket, connect, createServer } from 'node:net';

/** A running forwarder: `listen` address, the current target port and a switch. */
export interface SwitchableForwarder {
  host: string;
  port: number;
  /** The port new connections are forwarded to. */
  target(): number;
  /**
   * Points new connections at `port` and closes every open one: a browser keeps idle keep-alive
   * connections, and one still piped to the old replica would otherwise serve the next request.
   */
  switchTo(port: number): void;
  close(): Promise<void>;
}

/** Listens on `host:port` (a loopback address such as 127.0.0.2) and forwards each connection to 127.0.0.1:<target>. */
export async function startSwitchableForwarder(host: string, port: number, initialTarget: number): Promise<SwitchableForwarder> {
  let target = initialTarget;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    open.add(client);
    open.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    host,
    port,
    target: () => target,
    switchTo(p) {
      target = p;
      for (const s of open) s.destroy();
      open.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
