// Renders docs/screenshots/grafana-sessions.png: drives a real Portcullis cluster for a minute, scrapes every member's
// /metrics each second, evaluates the panels of infra/observability/grafana/dashboards/portcullis-sessions.json over
// those samples and draws them as SVG, then screenshots the page with Chromium. Grafana itself does not run here.
// Usage (from the repository root): node docs/render-dashboard.mjs [seconds of traffic, default 60]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { register } from 'tsx/esm/api';
import { SampleStore, evaluate, parseExposition, parsePromql } from './dashboard-promql.mjs';
import { renderDashboardHtml } from './dashboard-svg.mjs';
import { launchChromium } from './launch-chromium.mjs';

const ROOT = join(import.meta.dirname, '..');
const DASHBOARD = join(ROOT, 'infra', 'observability', 'grafana', 'dashboards', 'portcullis-sessions.json');
const OUT = join(ROOT, 'docs', 'screenshots', 'grafana-sessions.png');
/** The drawn page is kept (gitignored) so the picture can be inspected or re-shot without driving the cluster again. */
const HTML_OUT = join(ROOT, 'test', 'artifacts', 'dashboard', 'grafana-sessions.html');
const SECONDS = Number(process.argv[2] ?? 60);
/** Grafana's $__rate_interval for a 1 s scrape is at least 4 s; 10 s smooths a minute of sparse logins. */
const RATE_INTERVAL_S = 10;
const WIDTH = 1200;

// The cluster harness and the testkit are TypeScript: load them through tsx (already a dev dependency).
register();
const { startCluster } = await import('../test/cluster/cluster-harness.ts');
const { DEMO_USERS, loginThroughIdp } = await import('@portcullis/testkit');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Scrapes every member once a second into `store` until `signal.stop` is set. */
async function scrapeLoop(c, store, signal) {
  while (!signal.stop) {
    const started = Date.now();
    const texts = await Promise.all(
      c.members.map((m) =>
        fetch(`http://127.0.0.1:${m.metrics}/metrics`)
          .then((r) => r.text())
          .catch(() => ''),
      ),
    );
    store.beginScrape(started);
    c.members.forEach((m, i) => {
      store.add(`${m.role}-${m.index}`, parseExposition(texts[i]));
    });
    await sleep(Math.max(0, 1000 - (Date.now() - started)));
  }
}

/** A minute of traffic: logins on alternating gateways, page views on both, sign-outs on the other one, forged callbacks. */
async function driveTraffic(c, until) {
  const active = [];
  for (let i = 0; Date.now() < until; i++) {
    const user = DEMO_USERS[i % DEMO_USERS.length];
    const jar = c.newJar();
    const browsers = [c.browserOn(0, jar), c.browserOn(1, jar)];
    const done = await loginThroughIdp(browsers[i % 2], `${c.app}/`, user);
    if (done.finalResponse.status === 200) active.push({ user: user.username, browsers });
    for (const s of active) for (const b of s.browsers) await b.request(`${c.app}/page-${i}`);
    if (i % 3 === 2 && active.length > 0) {
      const victim = active[0];
      // Sign-out ends every session of that user: drop them all from the active set.
      await victim.browsers[(i + 1) % 2].follow(`${c.app}/outpost.goauthentik.io/sign_out`);
      for (let j = active.length - 1; j >= 0; j--) {
        if (active[j].user !== victim.user) continue;
        for (const b of active[j].browsers) await b.close();
        active.splice(j, 1);
      }
    }
    if (i % 5 === 4) {
      // A callback whose state no login issued: the gateway counts a failed login.
      const b = c.browserOn(i % 2);
      await b.request(`${c.app}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true&code=forged&state=forged`);
      await b.close();
    }
    await sleep(400);
  }
  for (const s of active) for (const b of s.browsers) await b.close();
}

/** Evaluates every panel's targets at every scrape: stat → last value + sparkline, timeseries → series, heatmap → buckets. */
function computePanels(dashboard, store) {
  const times = store.times;
  const windows = { rateInterval: RATE_INTERVAL_S, range: (times.at(-1) - times[0]) / 1000 + 1 };
  const data = new Map();
  for (const panel of dashboard.panels) {
    const named = new Map();
    for (const target of panel.targets) {
      const tree = parsePromql(target.expr);
      for (let k = 1; k < times.length; k++) {
        const v = evaluate(tree, store, k, windows);
        const vector = typeof v === 'number' ? [{ labels: {}, value: v }] : v;
        for (const s of vector) {
          if (!Number.isFinite(s.value)) continue;
          const name = (target.legendFormat ?? '').replace(/\{\{\s*(\w+)\s*\}\}/g, (_, l) => s.labels[l] ?? '');
          if (!named.has(name)) named.set(name, []);
          named.get(name).push({ t: times[k], v: s.value });
        }
      }
    }
    const series = [...named].map(([name, points]) => ({ name, points })).sort((a, b) => a.name.localeCompare(b.name));
    const range = { t0: times[1], t1: times.at(-1) };
    if (panel.type === 'stat') {
      const points = series[0]?.points ?? [];
      const last = points.at(-1)?.t === times.at(-1) ? points.at(-1).v : undefined;
      data.set(panel.id, { last, spark: points });
    } else if (panel.type === 'heatmap') {
      data.set(panel.id, { ...range, buckets: series.map((s) => ({ le: s.name, points: s.points })) });
    } else {
      data.set(panel.id, { ...range, series });
    }
  }
  return data;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
const c = await startCluster({ gateway: 2, auth: 1, session: 2 });
let browser;
try {
  const store = new SampleStore();
  const signal = { stop: false };
  const scraping = scrapeLoop(c, store, signal);
  await sleep(3000);
  await driveTraffic(c, Date.now() + SECONDS * 1000);
  await sleep(3000);
  signal.stop = true;
  await scraping;

  const html = renderDashboardHtml(dashboard, computePanels(dashboard, store), {
    width: WIDTH,
    subtitle: `Rendered from the dashboard JSON by docs/render-dashboard.mjs with ${store.times.length} scrapes (1 s apart) of a live cluster (2 gateways, 1 auth, 2 session) under scripted traffic; rates over ${RATE_INTERVAL_S} s. Not a Grafana screenshot.`,
  });
  mkdirSync(join(HTML_OUT, '..'), { recursive: true });
  writeFileSync(HTML_OUT, html);
  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: WIDTH, height: 900 } });
  await page.setContent(html);
  await page.screenshot({ path: OUT, fullPage: true });
  process.stdout.write(`wrote ${OUT}\n`);
} finally {
  await browser?.close();
  await c.close();
}
