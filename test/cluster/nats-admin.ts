// Fault helpers for the test NATS cluster: who leads the stream (from the monitoring endpoints), restart a node, move the leader.
import { createNatsBus } from '@portcullis/bus';
import { type NatsCluster, type NatsServer, startNatsServer } from '@portcullis/testkit';

/** The stream Portcullis uses in the cluster tests (the harness config names it). */
export const STREAM = 'PORTCULLIS_SESSIONS';

interface StreamDetail {
  name: string;
  cluster?: { leader?: string };
  consumer_detail?: Array<{ name: string; cluster?: { leader?: string } }>;
}

interface Jsz {
  meta_cluster?: { leader?: string };
  account_details?: Array<{ stream_detail?: StreamDetail[] }>;
}

async function readJsz(server: NatsServer): Promise<Jsz | null> {
  try {
    const res = await fetch(`${server.monitorUrl}/jsz?streams=true&consumers=true`, { signal: AbortSignal.timeout(1000) });
    return (await res.json()) as Jsz;
  } catch {
    // Dead or paused: a node that does not answer has no say.
    return null;
  }
}

function streamOf(jsz: Jsz | null): StreamDetail | undefined {
  return jsz?.account_details?.flatMap((a) => a.stream_detail ?? []).find((s) => s.name === STREAM);
}

/** The stream leader's server name as every answering node reports it; undefined while they disagree or none is elected. */
export async function findStreamLeader(nats: NatsCluster, skip: readonly NatsServer[] = []): Promise<string | undefined> {
  const views = (await Promise.all(nats.servers.filter((s) => !skip.includes(s)).map(readJsz))).filter((j) => j !== null);
  const leaders = views.map((j) => streamOf(j)?.cluster?.leader || undefined);
  if (leaders.length === 0 || leaders.some((l) => l === undefined || l !== leaders[0])) return undefined;
  return leaders[0];
}

/** Polls until the live nodes agree on a stream leader other than `not`; returns its name. */
export async function waitForStreamLeader(
  nats: NatsCluster,
  opts: { not?: string; skip?: readonly NatsServer[]; timeoutMs?: number } = {},
): Promise<string> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    const leader = await findStreamLeader(nats, opts.skip ?? []);
    if (leader !== undefined && leader !== opts.not) return leader;
    if (Date.now() > deadline) throw new Error(`no stream leader other than ${opts.not ?? '(none)'} within ${opts.timeoutMs ?? 20_000} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The JetStream meta leader's name as `server` sees it. */
export async function metaLeaderOf(server: NatsServer): Promise<string | undefined> {
  return (await readJsz(server))?.meta_cluster?.leader || undefined;
}

/** How many consumers of the stream `server` hosts (ordered consumers are R1: they die with their node). */
export async function consumersHostedBy(nats: NatsCluster, server: NatsServer): Promise<number> {
  const views = (await Promise.all(nats.servers.map(readJsz))).filter((j) => j !== null);
  const names = new Set<string>();
  for (const v of views) {
    for (const c of streamOf(v)?.consumer_detail ?? []) if (c.cluster?.leader === server.serverName) names.add(c.name);
  }
  return names.size;
}

/** How many consumers of the stream the answering nodes host in all. */
export async function countConsumers(nats: NatsCluster): Promise<number> {
  const views = (await Promise.all(nats.servers.map(readJsz))).filter((j) => j !== null);
  const names = new Set<string>();
  for (const v of views) for (const c of streamOf(v)?.consumer_detail ?? []) names.add(c.name);
  return names.size;
}

/** The member named `name`. */
export function serverNamed(nats: NatsCluster, name: string): NatsServer {
  const s = nats.servers.find((x) => x.serverName === name);
  if (!s) throw new Error(`no nats server is named ${name}`);
  return s;
}

/**
 * Starts a killed member again in place (same client port, store dir, name and cluster port, routed to
 * the others) and puts it in `nats.servers` instead of the dead one, so `nats.stop()` stops it.
 */
export async function restartNatsServer(nats: NatsCluster, dead: NatsServer): Promise<NatsServer> {
  await dead.exited;
  const others = nats.servers.filter((s) => s !== dead);
  const fresh = await startNatsServer({
    port: dead.port,
    dir: dead.dir,
    serverName: dead.serverName,
    clusterName: 'portcullis-test',
    ...(dead.clusterPort !== undefined ? { clusterPort: dead.clusterPort } : {}),
    routes: others.flatMap((s) => (s.clusterPort !== undefined ? [`nats://127.0.0.1:${s.clusterPort}`] : [])),
  });
  nats.servers[nats.servers.indexOf(dead)] = fresh;
  return fresh;
}

/** The minimal NATS connection surface used here (the client library stays private to @portcullis/bus). */
interface RawRequester {
  request(subject: string, data: string, opts: { timeout: number }): Promise<{ string(): string }>;
}

/**
 * Creates the stream (as Portcullis would, through @portcullis/bus) and asks its leader to step down until
 * the leader is not `avoid`, so faults injected on `avoid` hit neither the stream leader nor (since
 * consumers are created later, on the leader) any consumer.
 */
export async function placeStreamLeaderAwayFrom(nats: NatsCluster, avoid: NatsServer, maxAgeSeconds: number): Promise<string> {
  const others = nats.servers.filter((s) => s !== avoid).map((s) => s.url);
  const bus = await createNatsBus({
    nats: { servers: others, config_bucket: null, stream: STREAM, replicas: null, user: null, password: null, token: null, creds_file: null, tls: null },
    name: 'cluster-test-admin',
    streamMaxAgeSeconds: maxAgeSeconds,
  });
  try {
    const nc = bus.nc as RawRequester;
    for (let attempt = 0; attempt < 6; attempt++) {
      const leader = await waitForStreamLeader(nats);
      if (leader !== avoid.serverName) return leader;
      await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${STREAM}`, '', { timeout: 5000 }).catch(() => undefined);
      await waitForStreamLeader(nats, { not: avoid.serverName, timeoutMs: 10_000 }).catch(() => undefined);
    }
    throw new Error(`the stream leader stayed on ${avoid.serverName}`);
  } finally {
    await bus.close();
  }
}
