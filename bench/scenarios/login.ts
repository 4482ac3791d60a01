// Scenario 5: complete logins per second through the local oidc-provider, and the share of time in Portcullis vs the IdP.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { DEMO_USERS, createBrowser, loginThroughIdp } from '@portcullis/testkit';
import type { Environment } from '../lib/environment.ts';
import { cpuSeconds } from '../lib/processes.ts';
import type { ScenarioReport } from '../lib/report-types.ts';
import { percentiles } from '../lib/stats.ts';

type Log = (msg: string) => void;

interface UndiciRequest {
  origin?: string | URL;
  path?: string;
}

/**
 * `parallel` browser loops log in for `seconds` (each login: a fresh cookie jar, the app URL,
 * redirects to the IdP's form, the form post, redirects back to the app's page). Every undici
 * request is timed through undici's diagnostics channels and attributed by origin to Portcullis
 * or the IdP; the CPU time of each process is read from /proc as a second view.
 */
export async function loginScenario(env: Environment, seconds: number, parallel: number, log: Log): Promise<ScenarioReport> {
  const idpOrigin = new URL(env.idp.issuer).origin;
  const started = new WeakMap<object, { at: number; origin: string }>();
  const wall = { portcullis: 0, idp: 0, other: 0 };
  const onCreate = (m: unknown) => {
    const { request } = m as { request: UndiciRequest };
    started.set(request, { at: performance.now(), origin: String(request.origin ?? '') });
  };
  const onDone = (m: unknown) => {
    const { request } = m as { request: UndiciRequest };
    const s = started.get(request);
    if (!s) return;
    started.delete(request);
    const ms = performance.now() - s.at;
    const origin = s.origin.replace(/\/$/, '');
    if (origin === idpOrigin) wall.idp += ms;
    else if (origin.includes('localhost:') || origin.includes(`:${env.gatewayPort}`)) wall.portcullis += ms;
    else wall.other += ms;
  };
  subscribe('undici:request:create', onCreate);
  subscribe('undici:request:trailers', onDone);
  subscribe('undici:request:error', onDone);

  const procs = [...env.members.map((m) => ({ name: m.role, pid: m.proc.pid })), { name: 'idp', pid: env.idp.pid }];
  const cpuBefore = procs.map((p) => cpuSeconds(p.pid));
  const user = DEMO_USERS[0]!;
  const durations: number[] = [];
  let failures = 0;
  let firstError = '';
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (performance.now() < deadline) {
        const b = createBrowser({});
        const at = performance.now();
        try {
          const done = await loginThroughIdp(b, `http://${env.appHost}/private/page`, { username: user.username, password: user.password });
          if (done.finalResponse.status === 200) durations.push(performance.now() - at);
          else {
            failures++;
            firstError ||= `ended with ${done.finalResponse.status} at ${done.finalResponse.url}`;
          }
        } catch (err) {
          failures++;
          firstError ||= String(err);
        } finally {
          await b.close();
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  unsubscribe('undici:request:create', onCreate);
  unsubscribe('undici:request:trailers', onDone);
  unsubscribe('undici:request:error', onDone);
  const cpu = procs.map((p, i) => ({ name: p.name, s: cpuSeconds(p.pid) - cpuBefore[i]! }));
  const cpuBy = (pred: (n: string) => boolean) => cpu.filter((c) => pred(c.name)).reduce((a, c) => a + c.s, 0);
  const cpuPortcullis = cpuBy((n) => n !== 'idp');
  const cpuIdp = cpuBy((n) => n === 'idp');
  const totalWall = wall.portcullis + wall.idp;
  const lat = percentiles(durations);
  if (failures > 0) log(`  ${failures} failed logins; first: ${firstError}`);
  const pct = (x: number, of: number) => `${((100 * x) / of).toFixed(1)} %`;
  return {
    id: 5,
    title: 'Login throughput (local oidc-provider)',
    comparisons: [],
    figures: [
      { name: 'complete logins / s', value: (durations.length / elapsed).toFixed(1), unit: '/s' },
      { name: 'parallel browser flows', value: parallel },
      { name: 'logins completed / failed', value: `${durations.length} / ${failures}` },
      { name: 'login duration p50 / p99', value: `${lat.p50.toFixed(1)} / ${lat.p99.toFixed(1)}`, unit: 'ms' },
      { name: 'request time in Portcullis (wall, along the flows)', value: pct(wall.portcullis, totalWall) },
      { name: 'request time in the IdP (wall, along the flows)', value: pct(wall.idp, totalWall) },
      { name: 'CPU: Portcullis processes (gateways, auth, session)', value: `${cpuPortcullis.toFixed(2)} s (${pct(cpuPortcullis, cpuPortcullis + cpuIdp)})` },
      { name: 'CPU: IdP process', value: `${cpuIdp.toFixed(2)} s (${pct(cpuIdp, cpuPortcullis + cpuIdp)})` },
      { name: 'CPU by process', value: cpu.map((c) => `${c.name} ${c.s.toFixed(2)} s`).join(', ') },
    ],
    targets: [],
    notes: [
      `Each login is a fresh testkit browser (${user.username}) following the whole flow: app URL → 302 start → IdP authorize → login form → POST → consent-free redirects → callback → app page. Portcullis requests include the proxied app page.`,
      'The IdP runs in its own process; the browsers run in the bench process (they share the 2 cores with the servers).',
    ],
    distributions: [{ label: 'login duration', percentiles: lat }],
  };
}
