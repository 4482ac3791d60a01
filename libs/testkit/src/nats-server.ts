// Starts real nats-server processes (JetStream, optional clustering) on free loopback ports for tests.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getFreePort } from './ports.ts';
import { createTempDir, removeTempDir, startManagedProcess, waitForTcpAnswer } from './managed-process.ts';
import { TestkitError, TestkitErrorCode } from './errors.ts';

/** Options of {@link startNatsServer}. */
export interface StartNatsServerOptions {
  /** Client port; default: a free one. Pass a stopped server's port to restart it in place. */
  port?: number;
  /** Default true. */
  jetstream?: boolean;
  /** Enables clustering (with `clusterPort`, default: a free one). */
  clusterName?: string;
  clusterPort?: number;
  /** Route URLs of the other members, e.g. `nats://127.0.0.1:6222`. */
  routes?: string[];
  /** Default `nats-<port>-<random>`; JetStream clusters need distinct names. */
  serverName?: string;
  /** JetStream store dir; default: a new temp dir, removed on stop. A dir you pass is never removed. */
  dir?: string;
  /** Default 15 s. */
  startTimeoutMs?: number;
  /**
   * Extra server configuration (nats-server config syntax), written to a file passed with `-c`, e.g.
   * `'jetstream { max_file_store: 64KB }'` to fill JetStream's storage in a test. Command-line options win.
   */
  configText?: string;
}

/** A running nats-server. */
export interface NatsServer {
  /** `nats://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Monitoring endpoint (`/varz`, `/jsz`...), `http://127.0.0.1:<port>`. */
  monitorUrl: string;
  clusterPort?: number;
  serverName: string;
  pid: number;
  dir: string;
  /** Stops it (SIGTERM by default), waits for the exit, removes the temp dir it created. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** SIGKILL, no wait, dir kept: a crash you can restart from with the same `port`, `dir` and `serverName`. */
  kill(): void;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  /** The last lines of its log. */
  logTail(): string;
}

/**
 * Starts `nats-server` on 127.0.0.1 and resolves once a client connection receives its INFO line.
 * A failed start rejects with the end of the server's log.
 */
export async function startNatsServer(opts: StartNatsServerOptions = {}): Promise<NatsServer> {
  const port = opts.port ?? (await getFreePort());
  const monitorPort = await getFreePort();
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? createTempDir('nats');
  // Unique by default, so the readiness check can tell this server from another one holding the port.
  const serverName = opts.serverName ?? `nats-${port}-${randomBytes(3).toString('hex')}`;
  const args = ['-a', '127.0.0.1', '-p', String(port), '-m', String(monitorPort), '--server_name', serverName];
  if (opts.jetstream !== false) args.push('-js', '-sd', dir);
  const confDir = opts.configText === undefined ? undefined : createTempDir('nats-conf');
  if (confDir !== undefined) {
    writeFileSync(join(confDir, 'server.conf'), opts.configText!);
    args.push('-c', join(confDir, 'server.conf'));
  }
  let clusterPort: number | undefined;
  if (opts.clusterName !== undefined || opts.routes?.length || opts.clusterPort !== undefined) {
    clusterPort = opts.clusterPort ?? (await getFreePort());
    args.push('--cluster', `nats://127.0.0.1:${clusterPort}`, '--cluster_name', opts.clusterName ?? 'portcullis-test');
    if (opts.routes?.length) args.push('--routes', opts.routes.join(','));
  }

  const managed = await startManagedProcess({
    label: `nats-server ${serverName}`,
    command: 'nats-server',
    args,
    // INFO names the server: an answer from another process that holds the port does not count.
    ready: ({ isAlive }) =>
      waitForTcpAnswer(port, (text) => text.startsWith('INFO ') && text.includes(`"server_name":${JSON.stringify(serverName)}`), {
        isAlive,
      }),
    ...(opts.startTimeoutMs ? { startTimeoutMs: opts.startTimeoutMs } : {}),
  }).catch((err: unknown) => {
    if (ownsDir) removeTempDir(dir);
    if (confDir !== undefined) removeTempDir(confDir);
    throw err;
  });

  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    monitorUrl: `http://127.0.0.1:${monitorPort}`,
    serverName,
    pid: managed.pid,
    dir,
    async stop(signal) {
      await managed.stop(signal);
      if (ownsDir) removeTempDir(dir);
      if (confDir !== undefined) removeTempDir(confDir);
    },
    kill: () => managed.kill(),
    exited: managed.exited,
    logTail: managed.logTail,
  };
  if (clusterPort !== undefined) server.clusterPort = clusterPort;
  return server;
}

/** A running nats-server cluster. */
export interface NatsCluster {
  servers: NatsServer[];
  /** Client URLs of every member. */
  urls: string[];
  /** Stops every member. */
  stop(): Promise<void>;
}

/**
 * Starts `size` JetStream nats-servers routed to each other (`--cluster_name portcullis-test`,
 * server names n1..nN) and resolves once the JetStream meta group has elected a leader (~2 s),
 * so the first stream creation does not race the election.
 */
export async function startNatsCluster(size = 3, opts: { startTimeoutMs?: number } = {}): Promise<NatsCluster> {
  const members = await Promise.all(
    Array.from({ length: size }, async (_, i) => ({ name: `n${i + 1}`, port: await getFreePort(), clusterPort: await getFreePort() })),
  );
  const started = await Promise.allSettled(
    members.map((m) =>
      startNatsServer({
        port: m.port,
        clusterPort: m.clusterPort,
        clusterName: 'portcullis-test',
        serverName: m.name,
        routes: members.filter((o) => o !== m).map((o) => `nats://127.0.0.1:${o.clusterPort}`),
        ...(opts.startTimeoutMs ? { startTimeoutMs: opts.startTimeoutMs } : {}),
      }),
    ),
  );
  const servers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  try {
    await waitForMetaLeader(servers, Date.now() + (opts.startTimeoutMs ?? 15_000));
  } catch (err) {
    await stop();
    throw err;
  }
  return { servers, urls: servers.map((s) => s.url), stop };
}

async function waitForMetaLeader(servers: NatsServer[], deadline: number): Promise<void> {
  for (;;) {
    const leaders = await Promise.all(servers.map((s) => metaLeaderOf(s)));
    if (leaders.every((l) => l !== undefined && l === leaders[0])) return;
    if (Date.now() > deadline) {
      throw new TestkitError(
        TestkitErrorCode.ProcessStartFailed,
        `the nats cluster elected no JetStream meta leader in time\n--- ${servers[0]?.serverName} log tail ---\n${servers[0]?.logTail()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function metaLeaderOf(server: NatsServer): Promise<string | undefined> {
  try {
    const res = await fetch(`${server.monitorUrl}/jsz`);
    const body = (await res.json()) as { meta_cluster?: { leader?: string } };
    return body.meta_cluster?.leader || undefined;
  } catch {
    return undefined;
  }
}
