// Starts a real redis-server process on a free loopback port for tests, with no persistence.
import { createTempDir, removeTempDir, startManagedProcess, waitForTcpAnswer } from './managed-process.ts';
import { getFreePort } from './ports.ts';

/** Options of {@link startRedisServer}. */
export interface StartRedisServerOptions {
  /** Default: a free port. */
  port?: number;
  /** Working dir; default: a new temp dir, removed on stop. */
  dir?: string;
  /** Extra command-line arguments, e.g. `['--maxmemory', '10mb']`. */
  args?: string[];
  /** Default 15 s. */
  startTimeoutMs?: number;
}

/** A running redis-server. */
export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  url: string;
  port: number;
  pid: number;
  dir: string;
  /** Stops it (SIGTERM by default), waits for the exit, removes the temp dir it created. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** SIGKILL without waiting, to simulate a crash. */
  kill(): void;
  exited: Promise<void>;
  logTail(): string;
}

/**
 * Starts `redis-server --port P --bind 127.0.0.1 --save '' --appendonly no --dir DIR` and resolves
 * once it answers on its port (checked by its own pid in INFO). A failed start rejects with the end of the server's log.
 */
export async function startRedisServer(opts: StartRedisServerOptions = {}): Promise<RedisServer> {
  const port = opts.port ?? (await getFreePort());
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? createTempDir('redis');
  const proc = await startManagedProcess({
    label: `redis-server :${port}`,
    command: 'redis-server',
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...(opts.args ?? [])],
    // INFO names the process: an answer from another redis that holds the port does not count.
    ready: ({ pid, isAlive }) =>
      waitForTcpAnswer(port, (text) => text.includes(`process_id:${pid}\r\n`), { greeting: 'INFO server\r\n', isAlive }),
    ...(opts.startTimeoutMs ? { startTimeoutMs: opts.startTimeoutMs } : {}),
  }).catch((err: unknown) => {
    if (ownsDir) removeTempDir(dir);
    throw err;
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: proc.pid,
    dir,
    async stop(signal) {
      await proc.stop(signal);
      if (ownsDir) removeTempDir(dir);
    },
    kill: () => proc.kill(),
    exited: proc.exited,
    logTail: proc.logTail,
  };
}
