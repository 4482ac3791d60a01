// Finds a free TCP port on loopback for servers that must be told their port before they start.
import { createServer } from 'node:net';

/**
 * Ports are drawn below Linux's ephemeral range (32768–60999): a port the OS hands out for port 0 is
 * also what it hands to the next outgoing connection of any process, so a number picked there can
 * be taken before the server that was told it gets to bind it.
 */
const RANGE = { from: 20_000, to: 32_000 };
const ATTEMPTS = 50;

function tryPort(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * Returns a TCP port that was free on 127.0.0.1 a moment ago. Another process may still take it
 * before you bind it: prefer listening on port 0 yourself when you can; use this for child processes
 * that need the number on their command line.
 */
export async function getFreePort(): Promise<number> {
  for (let i = 0; i < ATTEMPTS; i++) {
    const port = RANGE.from + Math.floor(Math.random() * (RANGE.to - RANGE.from));
    if (await tryPort(port)) return port;
  }
  throw new Error(`no free port found in ${RANGE.from}-${RANGE.to} after ${ATTEMPTS} attempts`);
}
