// Tests of the real nats-server / redis-server starters: they answer on their ports, stop cleanly, and report failed starts.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import t from 'tap';
import { TestkitErrorCode } from './errors.ts';
import { startNatsCluster, startNatsServer } from './nats-server.ts';
import { getFreePort, reservePort } from './ports.ts';
import { startRedisServer } from './redis-server.ts';

/** Connects, optionally writes, and resolves with everything read until the first newline. */
function exchange(port: number, send?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    socket.once('error', reject);
    socket.once('connect', () => send && socket.write(send));
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (text.includes('\n')) {
        socket.destroy();
        resolve(text);
      }
    });
  });
}

const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

t.test('getFreePort returns a port nobody listens on', async (t) => {
  const port = await getFreePort();
  t.ok(port > 0 && port < 65536);
  await t.rejects(exchange(port), { code: 'ECONNREFUSED' });
});

t.test('getFreePort never hands out the same port twice, even to concurrent callers', async (t) => {
  // 300 draws from 12 000 ports collide with ~98 % probability unless handed-out ports are reserved:
  // a port handed out but not yet bound looks free to the next probe.
  const ports: number[] = [];
  for (let i = 0; i < 300; i++) ports.push(await getFreePort());
  t.equal(new Set(ports).size, ports.length, 'one after another: all distinct');
  const concurrent = await Promise.all(Array.from({ length: 100 }, () => getFreePort()));
  t.equal(new Set([...ports, ...concurrent]).size, ports.length + concurrent.length, 'concurrently: all distinct');
  t.notOk(await reservePort(ports[0] as number), 'a port handed out cannot be reserved again');
});

t.test('a port another live process was given is not handed out; its lock dies with that process', async (t) => {
  const portsModule = new URL('./ports.ts', import.meta.url).href;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '-e', `import(${JSON.stringify(portsModule)}).then(async (m) => { console.log(await m.getFreePort()); setInterval(() => {}, 1000); })`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => child.kill('SIGKILL'));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once('data', (chunk: Buffer) => resolve(Number(chunk.toString('utf8').trim())));
    child.once('exit', () => reject(new Error('the child exited before printing its port')));
  });
  const lock = join(tmpdir(), 'portcullis-test-ports', String(port));
  t.ok(existsSync(lock), 'the child holds a lock file for its port');
  t.notOk(await reservePort(port), 'refused while the child lives');
  child.kill('SIGKILL'); // no exit hook runs: the lock file stays behind, stale
  await new Promise((r) => child.once('exit', r));
  t.ok(existsSync(lock), 'the killed child left its lock');
  t.ok(await reservePort(port), 'a dead process\'s lock is taken over');
});

t.test('a process that exits normally releases the ports it was given', async (t) => {
  const portsModule = new URL('./ports.ts', import.meta.url).href;
  const out = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(portsModule)}).then(async (m) => console.log(await m.getFreePort()))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    child.stdout?.on('data', (c: Buffer) => {
      text += c.toString('utf8');
    });
    child.once('exit', () => resolve(text));
  });
  const port = Number(out.trim());
  t.ok(port > 0, 'the child printed its port');
  t.notOk(existsSync(join(tmpdir(), 'portcullis-test-ports', String(port))), 'its lock file is gone');
});

t.test('startNatsServer accepts a TCP connection that receives INFO with JetStream on; stop removes its dir', async (t) => {
  const nats = await startNatsServer();
  t.match(nats.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
  const info = await exchange(nats.port);
  t.match(info, /^INFO \{/);
  t.equal(JSON.parse(info.slice(5))['jetstream'], true);
  t.ok(existsSync(nats.dir), 'the JetStream dir exists while it runs');
  await nats.stop();
  t.notOk(isRunning(nats.pid), 'the process is gone');
  t.notOk(existsSync(nats.dir), 'the temp dir is removed');
});

t.test('a redis-server that cannot bind its port rejects with its log, not the other server\'s answer', async (t) => {
  const first = await startRedisServer();
  t.teardown(() => first.stop());
  await t.rejects(startRedisServer({ port: first.port }), {
    code: TestkitErrorCode.ProcessStartFailed,
    message: /exited before it was ready[\s\S]*log tail[\s\S]*(?:Address already in use|bind)/i,
  });
});

t.test('a failed start rejects with PROCESS_START_FAILED and the server log tail', async (t) => {
  const blocker = await startNatsServer({ jetstream: false });
  t.teardown(() => blocker.stop());
  // Same client port as a running server: nats-server logs the bind error and exits.
  await t.rejects(startNatsServer({ port: blocker.port, jetstream: false }), {
    code: TestkitErrorCode.ProcessStartFailed,
    message: /exited before it was ready[\s\S]*log tail[\s\S]*address already in use/,
  });
});

t.test('kill() ends the server at once, like a crash', async (t) => {
  const nats = await startNatsServer({ jetstream: false });
  t.teardown(() => nats.stop());
  nats.kill();
  await nats.exited;
  t.notOk(isRunning(nats.pid));
  await t.rejects(exchange(nats.port), { code: 'ECONNREFUSED' });
});

t.test('startRedisServer answers PING with PONG over a raw socket', async (t) => {
  const redis = await startRedisServer();
  t.teardown(() => redis.stop());
  t.match(redis.url, /^redis:\/\/127\.0\.0\.1:\d+$/);
  t.equal(await exchange(redis.port, 'PING\r\n'), '+PONG\r\n');
  t.match(await exchange(redis.port, 'CONFIG GET appendonly\r\n'), /^\*2\r\n\$10\r\nappendonly\r\n\$2\r\nno\r\n/, 'started without persistence');
});

t.test('startNatsCluster starts three routed JetStream servers with an elected meta leader', async (t) => {
  const cluster = await startNatsCluster(3);
  t.teardown(() => cluster.stop());
  t.equal(cluster.urls.length, 3);
  t.same(
    cluster.servers.map((s) => s.serverName),
    ['n1', 'n2', 'n3'],
  );
  const jsz = (await (await fetch(`${cluster.servers[0]?.monitorUrl}/jsz`)).json()) as {
    meta_cluster: { leader: string; cluster_size: number };
  };
  t.equal(jsz.meta_cluster.cluster_size, 3);
  t.match(jsz.meta_cluster.leader, /^n[123]$/);
  const varz = (await (await fetch(`${cluster.servers[1]?.monitorUrl}/routez`)).json()) as { num_routes: number };
  t.ok(varz.num_routes >= 2, `n2 is routed to the others (${varz.num_routes} routes)`);
});
