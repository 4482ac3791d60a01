// Scenario 4: sign-out propagation across 3 gateway processes — time until every replica denies, and any acceptance after the answer.
import type { Environment } from '../lib/environment.ts';
import type { ScenarioReport } from '../lib/report-types.ts';
import { STEAL_CONTENDED, withSteal } from '../lib/processes.ts';
import { appendSessions } from '../lib/sessions.ts';
import { RawProbe } from '../lib/raw-probe.ts';
import { percentiles } from '../lib/stats.ts';

type Log = (msg: string) => void;

/** A probe that still sees the session after this long is a failure of the run, not a slow propagation. */
const GIVE_UP_MS = 5_000;
/** How long after a sign-out its revoked session is probed once more, for the instrument's own floor. */
const FLOOR_PROBE_AFTER_MS = 20;

/**
 * For each of `count` sessions (one user each, started through the log): sign out through gateway
 * i mod 3, then probe every gateway with the cookie right after the answer, repeating a probe until
 * that replica denies. Records the time from the answer to the last replica's denial, and counts
 * every 200 a probe got after the answer (each is a session accepted after its sign-out).
 */
export async function signOutScenario(env: Environment, count: number, log: Log): Promise<ScenarioReport> {
  const gateways = env.gateways();
  const subs = Array.from({ length: count }, (_, i) => `bench-signout-${Date.now().toString(36)}-${i}`);
  const made = await appendSessions(env, 'app', subs);
  log(`  ${count} sessions appended at ${Math.round(made.appendsPerSecond)}/s, projected after ${Math.round(made.projectedAfterMs)} ms`);
  // One lean keep-alive probe per replica (raw socket, no dispatcher): the figure is mostly the probe's round trip.
  const probes = gateways.map((g) => new RawProbe(g.http));
  const get = (gw: number, path: string, cookie: string) => probes[gw]!.get(path, { host: env.appHost, cookie });
  const propagation: number[] = [];
  const signOutLatency: number[] = [];
  /** One accepted probe's round trip before each sign-out (through the upstream too). */
  const probeRtt: number[] = [];
  /** The same probes of the revoked session a little later, once the sign-out's own work is done: the instrument's floor. */
  const floor: number[] = [];
  let acceptedAfter = 0;
  let notAcceptedBefore = 0;
  const signOutStatuses: Record<string, number> = {};
  // Steal pauses every process at once, so it lands in the tail of a latency distribution.
  const { steal } = await withSteal(async () => {
    try {
      for (let i = 0; i < made.sessions.length; i++) {
        const s = made.sessions[i]!;
        // Before: every replica accepts the session (otherwise the "after" probes prove nothing).
        const before = await Promise.all(
          gateways.map(async (_, g) => {
            const at = performance.now();
            const answer = await get(g, '/small', s.cookie);
            probeRtt.push(answer.at - at);
            return answer.status;
          }),
        );
        if (before.some((st) => st !== 200)) notAcceptedBefore++;
        const sentAt = performance.now();
        const { status: st, at: answeredAt } = await get(i % gateways.length, '/outpost.goauthentik.io/sign_out', s.cookie);
        signOutStatuses[st] = (signOutStatuses[st] ?? 0) + 1;
        signOutLatency.push(answeredAt - sentAt);
        const deniedAt = await Promise.all(
          gateways.map(async (_, g) => {
            for (;;) {
              const answer = await get(g, '/small', s.cookie);
              if (answer.status !== 200) return answer.at;
              acceptedAfter++;
              if (answer.at - answeredAt > GIVE_UP_MS) return Number.POSITIVE_INFINITY;
            }
          }),
        );
        propagation.push(Math.max(...deniedAt) - answeredAt);
        await new Promise((r) => setTimeout(r, FLOOR_PROBE_AFTER_MS));
        const floorAt = performance.now();
        const later = await Promise.all(gateways.map((_, g) => get(g, '/small', s.cookie)));
        if (later.some((a) => a.status === 200)) acceptedAfter++;
        floor.push(Math.max(...later.map((a) => a.at)) - floorAt);
      }
    } finally {
      for (const p of probes) p.close();
    }
  });
  const p = percentiles(propagation);
  const so = percentiles(signOutLatency);
  const rtt = percentiles(probeRtt);
  const fl = percentiles(floor);
  return {
    id: 4,
    title: `Sign-out propagation (${gateways.length} gateway processes)`,
    comparisons: [],
    figures: [
      { name: 'sign-outs', value: count },
      { name: 'sign-out answers by status', value: JSON.stringify(signOutStatuses) },
      { name: 'answer → every replica denies, p50', value: round(p.p50), unit: 'ms' },
      { name: 'answer → every replica denies, p99', value: round(p.p99), unit: 'ms' },
      { name: "steal during the sign-outs (the cores' time the hypervisor gave to other guests)", value: Number.isFinite(steal) ? `${(steal * 100).toFixed(1)} %` : 'not measured' },
      { name: 'answer → every replica denies, max', value: round(p.max), unit: 'ms' },
      { name: 'sign-out request latency p50 / p99 / max', value: `${round(so.p50)} / ${round(so.p99)} / ${round(so.max)}`, unit: 'ms' },
      { name: 'one probe round trip (accepted, before sign-out) p50 / p99', value: `${round(rtt.p50)} / ${round(rtt.p99)}`, unit: 'ms' },
      {
        name: `the same 3 probes of the revoked session ${FLOOR_PROBE_AFTER_MS} ms later (the instrument's floor) p50 / p99 / max`,
        value: `${round(fl.p50)} / ${round(fl.p99)} / ${round(fl.max)}`,
        unit: 'ms',
      },
      { name: 'requests accepted after the sign-out answer', value: acceptedAfter },
      { name: 'sessions not accepted everywhere before sign-out', value: notAcceptedBefore },
      { name: 'SessionStarted appends through NATS (64 in flight)', value: Math.round(made.appendsPerSecond), unit: '/s' },
    ],
    targets: [
      {
        what: 'p99 answer → every replica denies',
        target: '≤ 10 ms',
        measured: `${round(p.p99)} ms`,
        met: p.p99 <= 10,
        ...(steal > STEAL_CONTENDED ? { contended: `the hypervisor took ${(steal * 100).toFixed(1)} % of the cores' time during the sign-outs (steal)` } : {}),
      },
      { what: 'requests accepted after the answer', target: '0', measured: String(acceptedAfter), met: acceptedAfter === 0 },
    ],
    notes: [
      'Each session belongs to its own user and was started by appending SessionStarted through a NATS bus, with a signed cookie; every replica accepted it before the sign-out.',
      'Propagation time = from the moment the sign-out answer is read to the moment the last of the 3 replicas answered a probe with a denial. A probe is one keep-alive GET on a raw socket, sent to the 3 replicas at once, so the figure includes one loopback round trip through 3 processes; the same 3 probes of the revoked session a little later, when nothing is propagating any more, measure that floor.',
      'A request accepted after the answer counts, whether by a probe right after it or by the later ones.',
    ],
    distributions: [
      { label: 'answer → all replicas deny', percentiles: p },
      { label: 'sign-out request', percentiles: so },
      { label: 'one probe round trip (before sign-out)', percentiles: rtt },
      { label: `3 probes of the revoked session ${FLOOR_PROBE_AFTER_MS} ms later`, percentiles: fl },
    ],
  };
}

const round = (n: number) => Math.round(n * 100) / 100;
