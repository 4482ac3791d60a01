// Finds a free TCP port on loopback for servers that must be told their port before they start, and never hands the same one out twice.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Ports are drawn below Linux's ephemeral range (32768–60999): a port the OS hands out for port 0 is
 * also what it hands to the next outgoing connection of any process, so a number picked there can
 * be taken before the server that was told it gets to bind it.
 */
const RANGE = { from: 20_000, to: 32_000 };
const ATTEMPTS = 200;

/**
 * A port is free on the wire only until somebody binds it, and the server we pick it for binds it
 * later (a nats-server takes ~100 ms). Two picks in that window could return the same number, in
 * this process (a cluster picks nine ports at once) or in another test file running alongside
 * (tap runs two). So every port handed out is reserved: in memory for this process, and by a lock
 * file named after it holding our pid, which other processes respect while that pid lives.
 */
const LOCK_DIR = join(tmpdir(), 'portcullis-test-ports');
const handedOut = new Set<number>();
let exitHookInstalled = false;

function releaseAll(): void {
  for (const port of handedOut) rmSync(join(LOCK_DIR, String(port)), { force: true });
}

function pidIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the cross-process lock of `port`; a lock left by a dead process is taken over. */
function lockPort(port: number): boolean {
  const path = join(LOCK_DIR, String(port));
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return false;
    }
    const owner = readLockOwner(port);
    if (owner === undefined) continue; // removed meanwhile: try again
    // 0 is a lock being written right now (empty file), NaN one we cannot read: both count as held.
    if (!(owner > 0) || pidIsAlive(owner)) return false;
    rmSync(path, { force: true });
  }
  return false;
}

function readLockOwner(port: number): number | undefined {
  try {
    return Number(readFileSync(join(LOCK_DIR, String(port)), 'utf8'));
  } catch {
    return undefined;
  }
}

function tryPort(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function installReleaseHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  mkdirSync(LOCK_DIR, { recursive: true });
  process.on('exit', releaseAll);
}

/**
 * Reserves `port` for this process if nobody (this process, another live one holding its lock
 * file, or a listener on 127.0.0.1) has it; the reservation lasts until this process exits.
 */
export async function reservePort(port: number): Promise<boolean> {
  installReleaseHook();
  if (handedOut.has(port)) return false;
  // Reserved before the probe, so a concurrent call in this process cannot pick it meanwhile.
  handedOut.add(port);
  const locked = lockPort(port);
  if (locked && (await tryPort(port))) return true;
  handedOut.delete(port);
  if (locked) rmSync(join(LOCK_DIR, String(port)), { force: true });
  return false;
}

/**
 * Returns a TCP port that was free on 127.0.0.1 a moment ago and that no other caller of this
 * function (in this process or another live one) has been given. Something else may still take it
 * before you bind it: prefer listening on port 0 yourself when you can; use this for child
 * processes that need the number on their command line.
 */
export async function getFreePort(): Promise<number> {
  for (let i = 0; i < ATTEMPTS; i++) {
    const port = RANGE.from + Math.floor(Math.random() * (RANGE.to - RANGE.from));
    if (await reservePort(port)) return port;
  }
  throw new Error(`no free port found in ${RANGE.from}-${RANGE.to} after ${ATTEMPTS} attempts`);
}
