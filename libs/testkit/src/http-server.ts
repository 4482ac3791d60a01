// Small helpers to listen on and close node:http / node:https servers used by the test servers.
import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

const openSockets = new WeakMap<Server, Set<Socket>>();

/** Listens on host:port (0 = any free port) and resolves with the bound port. */
export function listen(server: Server, port: number, host: string): Promise<number> {
  // Upgraded (WebSocket) sockets leave the server's own bookkeeping; track every socket to end them on close.
  const sockets = new Set<Socket>();
  openSockets.set(server, sockets);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Closes the server and every connection it still has (keep-alive and upgraded ones too), so close() cannot hang. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeAllConnections();
    for (const socket of openSockets.get(server) ?? []) socket.destroy();
  });
}
