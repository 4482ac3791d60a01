// The Grafana dashboards and observability stack in infra/observability, checked against a running Portcullis's real /metrics.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROLES, serviceName, startPortcullis } from '@portcullis/cli';
import { CERTIFICATE_EXPIRY_WARNING_DAYS, loadConfig } from '@portcullis/config';
import { createLogger } from '@portcullis/telemetry';
import { getFreePort } from '@portcullis/testkit';
import { createMetrics } from '@portcullis/telemetry';
import t from 'tap';
import { parse as parseYaml } from 'yaml';

const ROOT = join(import.meta.dirname, '..');
const OBS = join(ROOT, 'infra', 'observability');
const DASHBOARDS_DIR = join(OBS, 'grafana', 'dashboards');
/** Where Grafana reads dashboards inside its container (provider path and compose mount must agree). */
const GRAFANA_DASHBOARDS_PATH = '/var/lib/grafana/dashboards';
const EXPECTED_DASHBOARDS = ['portcullis-overview.json', 'portcullis-replicas.json', 'portcullis-sessions.json'];
/** Grafana's `${datasource}` variable and the compose file's folder variable, spelled without a JS template. */
const DATASOURCE_VAR = '$' + '{datasource}';
const OBS_DIR_PREFIX = '$' + '{PORTCULLIS_OBSERVABILITY_DIR:-.}/';
const PANEL_TYPES = new Set(['timeseries', 'stat', 'heatmap']);
/** Series Prometheus itself adds to every scrape target; they never appear in /metrics. */
const PROMETHEUS_SYNTHETIC = new Set(['up']);

// PromQL functions and aggregation operators: an identifier followed by `(` must be one of these.
const PROMQL_FUNCTIONS = new Set(
  (
    'abs absent absent_over_time acos acosh asin asinh atan atanh avg avg_over_time bottomk ceil changes clamp clamp_max clamp_min ' +
    'count count_over_time count_values cos cosh day_of_month day_of_week day_of_year days_in_month deg delta deriv exp floor group ' +
    'histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum holt_winters ' +
    'hour idelta increase irate label_join label_replace last_over_time limitk limit_ratio ln log10 log2 mad_over_time max ' +
    'max_over_time min min_over_time minute month pi predict_linear present_over_time quantile quantile_over_time rad rate resets ' +
    'round scalar sgn sin sinh sort sort_by_label sort_by_label_desc sort_desc sqrt stddev stddev_over_time stdvar stdvar_over_time ' +
    'sum sum_over_time tan tanh time timestamp topk vector year'
  ).split(' '),
);
const PROMQL_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'atan2', 'inf', 'nan']);

/** Metric names a scrape offers to PromQL: families from `# HELP`, histograms as `_bucket`/`_sum`/`_count` (from `# TYPE`). */
function metricNamesFromExposition(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# HELP (\S+)/gm)) names.add(m[1]!);
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)/gm)) {
    const [name, type] = [m[1]!, m[2]!];
    names.add(name);
    if (type === 'histogram' || type === 'summary') {
      // A classic histogram has no series under its bare name; a summary has (its quantiles).
      if (type === 'histogram') names.delete(name);
      for (const suffix of type === 'histogram' ? ['_bucket', '_sum', '_count'] : ['_sum', '_count']) names.add(name + suffix);
    }
  }
  return names;
}

/** What a PromQL expression references: metric names, plus anything that keeps it from parsing. */
interface ParsedExpr {
  metrics: string[];
  problems: string[];
}

/**
 * Extracts metric names from PromQL without a full parser: strings, label matchers, ranges,
 * grouping label lists and Grafana variables are removed; every identifier left that is not a
 * function call or keyword is a metric name.
 */
function parsePromQL(expr: string): ParsedExpr {
  const problems: string[] = [];
  const stack: string[] = [];
  const pairs: Record<string, string> = { ')': '(', '}': '{', ']': '[' };
  for (const ch of expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')) {
    if (ch === '(' || ch === '{' || ch === '[') stack.push(ch);
    else if (ch in pairs && stack.pop() !== pairs[ch]) problems.push(`unbalanced "${ch}"`);
  }
  if (stack.length > 0) problems.push(`unclosed "${stack.join('')}"`);
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ');
  const metrics: string[] = [];
  for (const m of stripped.matchAll(/(?<![\w.:])[a-zA-Z_:][\w:]*/g)) {
    const word = m[0];
    const next = stripped.slice(m.index + word.length).trimStart()[0];
    if (next === '(') {
      if (!PROMQL_FUNCTIONS.has(word)) problems.push(`unknown function ${word}()`);
    } else if (!PROMQL_KEYWORDS.has(word.toLowerCase())) {
      metrics.push(word);
    }
  }
  return { metrics, problems };
}

/** A Grafana variable query: `label_values(<selector>, label)` checks its selector; other forms as PromQL. */
function parseVariableQuery(query: string): ParsedExpr {
  const m = /^\s*label_values\(\s*(.*),\s*[a-zA-Z_]\w*\s*\)\s*$/.exec(query);
  if (m) return parsePromQL(m[1]!);
  if (/^\s*label_values\(\s*[a-zA-Z_]\w*\s*\)\s*$/.test(query)) return { metrics: [], problems: [] };
  return parsePromQL(query);
}

// Loose shapes of the JSON being checked: everything is optional because the test is what checks it.
interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: Target[];
}
interface Variable {
  name?: string;
  type?: string;
  query?: string | { query?: string };
}
interface Dashboard {
  uid?: string;
  title?: string;
  tags?: string[];
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: Variable[] };
}

/** Every problem with one dashboard, as readable lines; empty when it is sound. */
function problemsIn(d: Dashboard, known: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  if (!d.uid) problems.push('no uid');
  if (!d.title) problems.push('no title');
  if (d.schemaVersion !== 39) problems.push(`schemaVersion ${d.schemaVersion}, expected 39`);
  if (!d.tags?.includes('portcullis')) problems.push('not tagged "portcullis"');
  if (!Array.isArray(d.panels) || d.panels.length === 0) problems.push('no panels');

  const variables = d.templating?.list ?? [];
  const varNames = new Set(variables.map((v) => v.name));
  const dsVar = variables.find((v) => v.name === 'datasource');
  if (dsVar?.type !== 'datasource' || dsVar.query !== 'prometheus') problems.push('no "datasource" variable of type prometheus');
  for (const name of ['job', 'instance']) if (!varNames.has(name)) problems.push(`no "${name}" variable`);

  const checkExpr = (where: string, parsed: ParsedExpr, text: string) => {
    for (const p of parsed.problems) problems.push(`${where}: ${p} in ${text}`);
    if (parsed.metrics.length === 0) problems.push(`${where}: no metric in ${text}`);
    for (const name of parsed.metrics) {
      if (!known.has(name) && !PROMETHEUS_SYNTHETIC.has(name)) problems.push(`${where}: metric ${name} is not exported by Portcullis`);
    }
    for (const m of text.matchAll(/\$(?:\{(\w+)[^}]*\}|(\w+))/g)) {
      const name = m[1] ?? m[2]!;
      if (!name.startsWith('__') && !varNames.has(name)) problems.push(`${where}: variable $${name} is not defined`);
    }
  };
  for (const v of variables) {
    if (v.type !== 'query') continue;
    const query = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    checkExpr(`variable ${v.name}`, parseVariableQuery(query), query);
  }

  const ids = new Set<number>();
  const placed: Array<{ title: string; x: number; y: number; w: number; h: number }> = [];
  for (const [i, p] of (d.panels ?? []).entries()) {
    const where = `panel ${p.id ?? `#${i}`} "${p.title ?? ''}"`;
    if (!p.title) problems.push(`${where}: no title`);
    if (typeof p.id !== 'number') problems.push(`${where}: no numeric id`);
    else if (ids.has(p.id)) problems.push(`${where}: duplicate id ${p.id}`);
    else ids.add(p.id);
    if (!PANEL_TYPES.has(p.type ?? '')) problems.push(`${where}: type ${p.type} is not one of ${[...PANEL_TYPES].join(', ')}`);
    if (p.datasource?.uid !== DATASOURCE_VAR) problems.push(`${where}: datasource is not \${datasource}`);
    const g = p.gridPos;
    if (!g || g.x < 0 || g.w < 1 || g.x + g.w > 24 || g.h < 1) problems.push(`${where}: gridPos missing or outside the 24 columns`);
    else {
      for (const o of placed) {
        if (g.x < o.x + o.w && o.x < g.x + g.w && g.y < o.y + o.h && o.y < g.y + g.h) problems.push(`${where}: overlaps "${o.title}"`);
      }
      placed.push({ title: p.title ?? '', ...g });
    }
    if (!Array.isArray(p.targets) || p.targets.length === 0) problems.push(`${where}: no targets`);
    const refIds = new Set<string>();
    for (const target of p.targets ?? []) {
      if (!target.refId || refIds.has(target.refId)) problems.push(`${where}: missing or duplicate refId ${target.refId}`);
      refIds.add(target.refId ?? '');
      if (target.datasource?.uid !== DATASOURCE_VAR) problems.push(`${where} ${target.refId}: target datasource is not \${datasource}`);
      if (!target.expr) problems.push(`${where} ${target.refId}: no expr`);
      else checkExpr(`${where} ${target.refId}`, parsePromQL(target.expr), target.expr);
    }
  }
  return problems;
}

function readYaml<T>(...path: string[]): T {
  return parseYaml(readFileSync(join(OBS, ...path), 'utf8')) as T;
}

function readDashboard(file: string): Dashboard {
  return JSON.parse(readFileSync(join(DASHBOARDS_DIR, file), 'utf8')) as Dashboard;
}

/** Starts an embedded Portcullis with a metrics listener, sends one request through it, and scrapes it. */
async function scrapeRunningPortcullis(): Promise<string> {
  const http = await getFreePort();
  const metrics = await getFreePort();
  const loaded = loadConfig({
    env: {},
    text: `
log_level: silent
outpost:
  listen: { http: "127.0.0.1:${http}", https: null, metrics: "127.0.0.1:${metrics}" }
providers:
  - name: app
    mode: proxy
    external_host: http://app.localhost:${http}
    internal_host: http://127.0.0.1:1
    issuer: http://127.0.0.1:1/
    client_id: app
    client_secret: secret
    cookie_secret: dashboards-test-cookie-secret-0123456789
`,
  });
  if (!loaded.ok) throw new Error(loaded.problems.map((p) => `${p.path}: ${p.reason}`).join('\n'));
  const portcullis = await startPortcullis({ config: loaded.config, roles: new Set(ROLES), logger: createLogger({ level: 'silent', service: 'portcullis-test' }) });
  try {
    await fetch(`http://127.0.0.1:${http}/outpost.goauthentik.io/ping`);
    const res = await fetch(`http://127.0.0.1:${metrics}/metrics`);
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
    return await res.text();
  } finally {
    await portcullis.stop();
  }
}

const scrape = await scrapeRunningPortcullis();
// An embedded process leaves out the cluster-only families (NATS/Redis state, cache, projection lag);
// cluster processes export those by role. Their union is every family `createMetrics` defines.
const everyRoleMetrics = createMetrics({ outpostName: 'x', version: '0' });
const everyRole = await everyRoleMetrics.registry.metrics();
const known = new Set([...metricNamesFromExposition(scrape), ...metricNamesFromExposition(everyRole)]);

t.test('the scrape comes from the running process and lists its own and the default metrics', async (t) => {
  t.match(scrape, /authentik_outpost_proxy_request_duration_seconds_count\{[^}]*type="ping"[^}]*\} 1/, 'the ping sent to this process was measured');
  for (const name of [
    'authentik_outpost_proxy_request_duration_seconds_bucket',
    'portcullis_auth_decisions_total',
    'portcullis_signout_propagation_seconds_count',
    'process_cpu_seconds_total',
    'nodejs_heap_size_used_bytes',
  ]) {
    t.ok(known.has(name), `${name} is exported`);
  }
  t.notOk(known.has('authentik_outpost_proxy_request_duration_seconds'), 'a histogram has no series under its bare name');
});

t.test('the PromQL reader finds metric names and skips functions, keywords, labels, ranges and variables', async (t) => {
  const parsed = parsePromQL(
    'histogram_quantile(0.99, sum by (le, host) (rate(a_bucket{job=~"$job", host="x{y}"}[$__rate_interval]))) / on(instance) group_left(version) b offset 5m + (sum(c) without (le) or vector(1e-9)) > bool inf',
  );
  t.same(parsed, { metrics: ['a_bucket', 'b', 'c'], problems: [] });
  t.same(parsePromQL('sum(rate(x[5m])').problems, ['unclosed "("']);
  t.same(parsePromQL('ratez(x)').problems, ['unknown function ratez()']);
  t.same(parseVariableQuery('label_values(authentik_outpost_info{job=~"$job"}, instance)').metrics, ['authentik_outpost_info']);
});

t.test('a dashboard referencing a metric Portcullis does not export is reported', async (t) => {
  const d = readDashboard('portcullis-overview.json');
  const panel = structuredClone(d.panels![0]!);
  panel.id = 9999;
  panel.gridPos = { x: 0, y: 1000, w: 6, h: 4 };
  panel.targets = [{ refId: 'A', datasource: { type: 'prometheus', uid: DATASOURCE_VAR }, expr: 'sum(rate(portcullis_bogus_total{job=~"$job"}[$__rate_interval]))' }];
  const problems = problemsIn({ ...d, panels: [...d.panels!, panel] }, known);
  t.same(problems, ['panel 9999 "Request rate" A: metric portcullis_bogus_total is not exported by Portcullis']);
});

t.test('the dashboards folder holds the overview, sessions and replicas dashboards', async (t) => {
  t.same(
    readdirSync(DASHBOARDS_DIR)
      .filter((f) => f.endsWith('.json'))
      .sort(),
    EXPECTED_DASHBOARDS,
  );
});

const uids = new Set<string>();
for (const file of EXPECTED_DASHBOARDS) {
  t.test(`${file}: valid dashboard JSON, panels sound, every metric it queries exists in the scrape`, async (t) => {
    const d = readDashboard(file);
    t.same(problemsIn(d, known), [], 'no problems (each names the panel, query and metric)');
    t.equal(d.uid, file.replace(/\.json$/, ''), 'uid matches the file name');
    t.notOk(uids.has(d.uid!), 'uid unique across dashboards');
    uids.add(d.uid!);
  });
}

t.test('the Overview dashboard shows the time left on each TLS certificate served', async (t) => {
  const exprs = (readDashboard('portcullis-overview.json').panels ?? []).flatMap((p) => (p.targets ?? []).map((x) => x.expr ?? ''));
  t.ok(
    exprs.some((e) => e.includes('portcullis_tls_certificate_expiry_timestamp_seconds')),
    'a panel queries portcullis_tls_certificate_expiry_timestamp_seconds',
  );
});

interface AlertRule {
  alert?: string;
  expr?: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Every problem with alerts.yml, as readable lines; empty when it is sound. */
function alertProblems(rules: { groups?: Array<{ name?: string; rules?: AlertRule[] }> }, known: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  if (!rules.groups?.length) problems.push('no groups');
  for (const group of rules.groups ?? []) {
    if (!group.name) problems.push('a group without a name');
    for (const rule of group.rules ?? []) {
      const where = `${group.name} / ${rule.alert ?? '(no alert name)'}`;
      if (!rule.alert || !/^Portcullis[A-Z]\w+$/.test(rule.alert)) problems.push(`${where}: alert not named Portcullis<Something>`);
      else if (names.has(rule.alert)) problems.push(`${where}: duplicate alert name`);
      names.add(rule.alert ?? '');
      if (!['warning', 'critical'].includes(rule.labels?.severity ?? '')) problems.push(`${where}: severity is not warning or critical`);
      if (!rule.annotations?.summary || !rule.annotations.description) problems.push(`${where}: no summary or description annotation`);
      if (!rule.expr) {
        problems.push(`${where}: no expr`);
        continue;
      }
      const parsed = parsePromQL(rule.expr);
      for (const p of parsed.problems) problems.push(`${where}: ${p} in ${rule.expr}`);
      if (parsed.metrics.length === 0) problems.push(`${where}: no metric in ${rule.expr}`);
      // The labels an alert of this expression carries: its metrics' own, plus the target's job and instance.
      const labels = new Set(['job', 'instance']);
      for (const name of parsed.metrics) {
        if (!known.has(name)) problems.push(`${where}: metric ${name} is not exported by Portcullis`);
        const metric = everyRoleMetrics.registry.getSingleMetric(name) as unknown as { labelNames?: string[] } | undefined;
        for (const l of metric?.labelNames ?? []) labels.add(l);
      }
      for (const text of Object.values(rule.annotations ?? {})) {
        for (const m of text.matchAll(/\$labels\.(\w+)/g)) if (!labels.has(m[1]!)) problems.push(`${where}: annotation uses $labels.${m[1]}, which the alert does not carry`);
      }
    }
  }
  return problems;
}

t.test('alerts.yml: every rule names a metric Portcullis exports, has a severity and annotations using labels the alert carries', async (t) => {
  const rules = readYaml<{ groups: Array<{ name: string; rules: AlertRule[] }> }>('alerts.yml');
  t.same(alertProblems(rules, known), [], 'no problems (each names the group, alert and what is wrong)');
  const broken = structuredClone(rules);
  broken.groups[0]!.rules.push({ alert: 'PortcullisBogus', expr: 'portcullis_bogus_total > 0', labels: { severity: 'page' }, annotations: { summary: '{{ $labels.nothing }}' } });
  t.same(
    alertProblems(broken, known),
    [
      'portcullis-tls-certificates / PortcullisBogus: severity is not warning or critical',
      'portcullis-tls-certificates / PortcullisBogus: no summary or description annotation',
      'portcullis-tls-certificates / PortcullisBogus: metric portcullis_bogus_total is not exported by Portcullis',
      'portcullis-tls-certificates / PortcullisBogus: annotation uses $labels.nothing, which the alert does not carry',
    ],
    'the checks catch a broken rule',
  );
});

t.test('alerts.yml: a certificate expiring within check-config\'s warning period, and one already expired, each alert', async (t) => {
  const rules = readYaml<{ groups: Array<{ rules: AlertRule[] }> }>('alerts.yml').groups.flatMap((g) => g.rules);
  const soon = rules.find((r) => r.alert === 'PortcullisTLSCertificateExpiringSoon');
  const expired = rules.find((r) => r.alert === 'PortcullisTLSCertificateExpired');
  t.equal(
    soon?.expr,
    `portcullis_tls_certificate_expiry_timestamp_seconds - time() < ${CERTIFICATE_EXPIRY_WARNING_DAYS} * 86400 > 0`,
    `expiring soon: fewer than CERTIFICATE_EXPIRY_WARNING_DAYS (${CERTIFICATE_EXPIRY_WARNING_DAYS}) days left, not yet expired`,
  );
  t.equal(soon?.labels?.severity, 'warning');
  t.equal(expired?.expr, 'time() - portcullis_tls_certificate_expiry_timestamp_seconds >= 0', 'expired: notAfter reached');
  t.equal(expired?.labels?.severity, 'critical');
  t.equal(expired?.for, undefined, 'an expired certificate alerts at the next evaluation');
});

t.test('the observability README lists every dashboard and panel title', async (t) => {
  const readme = readFileSync(join(OBS, 'README.md'), 'utf8');
  for (const file of EXPECTED_DASHBOARDS) {
    const d = readDashboard(file);
    t.ok(readme.includes(d.title!), `${d.title} listed`);
    for (const p of d.panels ?? []) t.ok(readme.includes(p.title!), `${d.title} / ${p.title} listed`);
  }
  t.match(readme, 'OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318');
  for (const group of readYaml<{ groups: Array<{ rules: AlertRule[] }> }>('alerts.yml').groups) {
    for (const rule of group.rules) t.ok(readme.includes(rule.alert!), `alert ${rule.alert} listed`);
  }
});

interface ComposeFile {
  services: Record<string, { image?: string; volumes?: string[] }>;
}

/** The compose file's bind mounts for one service, as [file under infra/observability, container path]. */
function bindMounts(compose: ComposeFile, service: string): Array<[string, string]> {
  return (compose.services[service]?.volumes ?? [])
    .filter((v) => v.startsWith(OBS_DIR_PREFIX))
    .map((v) => {
      const [source, target] = v.replace(OBS_DIR_PREFIX, '').split(':');
      return [source!, target!];
    });
}

t.test('compose: the four services on pinned official images, every mounted file present', async (t) => {
  const compose = readYaml<ComposeFile>('compose.observability.yaml');
  const images: Record<string, RegExp> = {
    'otel-collector': /^otel\/opentelemetry-collector-contrib:\d+\.\d+\.\d+$/,
    tempo: /^grafana\/tempo:\d+\.\d+\.\d+$/,
    prometheus: /^prom\/prometheus:v\d+\.\d+\.\d+$/,
    grafana: /^grafana\/grafana:\d+\.\d+\.\d+$/,
  };
  for (const [service, image] of Object.entries(images)) {
    t.match(compose.services[service]?.image ?? '', image, `${service} pinned to an explicit version`);
    const mounts = bindMounts(compose, service);
    t.ok(mounts.length > 0, `${service} mounts its configuration`);
    for (const [source] of mounts) t.ok(existsSync(join(OBS, source)), `${service}: ${source} exists`);
  }
  t.same(
    bindMounts(compose, 'grafana'),
    [
      ['grafana/provisioning', '/etc/grafana/provisioning'],
      ['grafana/dashboards', GRAFANA_DASHBOARDS_PATH],
    ],
  );
});

t.test('grafana provisioning: Prometheus uid prometheus, Tempo uid tempo, dashboards read from the mounted folder', async (t) => {
  const ds = readYaml<{ datasources: Array<{ uid: string; type: string; url: string }> }>('grafana', 'provisioning', 'datasources', 'datasources.yaml');
  const tempo = readYaml<{ server: { http_listen_port: number } }>('tempo.yaml');
  t.match(ds.datasources.find((d) => d.uid === 'prometheus'), { type: 'prometheus', url: 'http://prometheus:9090' });
  t.match(ds.datasources.find((d) => d.uid === 'tempo'), { type: 'tempo', url: `http://tempo:${tempo.server.http_listen_port}` });
  const providers = readYaml<{ providers: Array<{ type: string; options: { path: string } }> }>('grafana', 'provisioning', 'dashboards', 'dashboards.yaml');
  t.equal(providers.providers.length, 1);
  t.match(providers.providers[0], { type: 'file', options: { path: GRAFANA_DASHBOARDS_PATH } });
});

t.test('prometheus.yml loads alerts.yml from where compose mounts it', async (t) => {
  const prom = readYaml<{ rule_files?: string[] }>('prometheus.yml');
  const mounts = bindMounts(readYaml<ComposeFile>('compose.observability.yaml'), 'prometheus');
  t.same(prom.rule_files, ['/etc/prometheus/alerts.yml']);
  t.ok(
    mounts.some(([source, target]) => source === 'alerts.yml' && target === '/etc/prometheus/alerts.yml'),
    'compose mounts alerts.yml at that path',
  );
});

/** promtool from scripts/install-servers.sh (taken out of Debian's prometheus package) or the PATH. */
function findPromtool(): string | undefined {
  for (const candidate of [join(ROOT, '.tmp', 'tools', 'promtool'), 'promtool']) {
    if (spawnSync(candidate, ['--version'], { encoding: 'utf8' }).status === 0) return candidate;
  }
  return undefined;
}
const promtool = findPromtool();
const noPromtool = promtool ? false : "promtool is not installed (run scripts/install-servers.sh, which extracts it from Debian's prometheus package)";

t.test('promtool: prometheus.yml and alerts.yml are valid, and the alerts fire as alerts.test.yml expects', { skip: noPromtool }, async (t) => {
  const run = (args: string[], cwd = OBS) => spawnSync(promtool!, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  const rules = run(['check', 'rules', 'alerts.yml']);
  t.equal(rules.status, 0, `promtool check rules: ${rules.stdout}${rules.stderr}`);
  // The config names the rules file where the container has it; check a copy pointing at this folder's.
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-prometheus-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = readFileSync(join(OBS, 'prometheus.yml'), 'utf8');
  t.match(config, '/etc/prometheus/alerts.yml');
  writeFileSync(join(dir, 'prometheus.yml'), config.replaceAll('/etc/prometheus/alerts.yml', join(OBS, 'alerts.yml')));
  const checked = run(['check', 'config', join(dir, 'prometheus.yml')]);
  t.equal(checked.status, 0, `promtool check config: ${checked.stdout}${checked.stderr}`);
  t.match(checked.stdout, /SUCCESS: 1 rule files found/, 'the config loads the rules file');
  const tested = run(['test', 'rules', 'alerts.test.yml']);
  t.equal(tested.status, 0, `promtool test rules: ${tested.stdout}${tested.stderr}`);
});

t.test('prometheus.yml: one job per role, named as the role\'s service, scraping port 9300', async (t) => {
  const prom = readYaml<{ scrape_configs: Array<{ job_name: string; static_configs?: Array<{ targets: string[] }> }> }>('prometheus.yml');
  for (const role of ROLES) {
    const job = prom.scrape_configs.find((s) => s.job_name === serviceName(new Set([role])));
    t.ok(job, `job ${serviceName(new Set([role]))}`);
    const targets = job?.static_configs?.flatMap((s) => s.targets) ?? [];
    t.ok(targets.length > 0, `${role} has targets`);
    for (const target of targets) t.match(target, new RegExp(`^${role}-\\d+:9300$`), `${target} is a ${role} replica on 9300`);
  }
});

t.test('otel-collector: OTLP in on 4317 and 4318, traces out to Tempo\'s OTLP receiver, every pipeline component defined', async (t) => {
  interface Collector {
    receivers: { otlp: { protocols: { grpc: { endpoint: string }; http: { endpoint: string } } } };
    processors: Record<string, unknown>;
    exporters: Record<string, { endpoint?: string }>;
    service: { pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }> };
  }
  const c = readYaml<Collector>('otel-collector.yaml');
  t.match(c.receivers.otlp.protocols.grpc.endpoint, /:4317$/);
  t.match(c.receivers.otlp.protocols.http.endpoint, /:4318$/);
  const tempo = readYaml<{ distributor: { receivers: { otlp: { protocols: { grpc: { endpoint: string } } } } } }>('tempo.yaml');
  const tempoGrpcPort = tempo.distributor.receivers.otlp.protocols.grpc.endpoint.split(':').pop();
  const traces = c.service.pipelines['traces'];
  t.ok(traces, 'a traces pipeline');
  t.ok(
    traces?.exporters.some((e) => c.exporters[e]?.endpoint === `tempo:${tempoGrpcPort}`),
    'traces are exported to tempo over OTLP gRPC',
  );
  for (const [name, p] of Object.entries(c.service.pipelines)) {
    for (const r of p.receivers) t.ok(r in c.receivers, `${name}: receiver ${r} defined`);
    for (const pr of p.processors ?? []) t.ok(pr in c.processors, `${name}: processor ${pr} defined`);
    for (const e of p.exporters) t.ok(e in c.exporters, `${name}: exporter ${e} defined`);
  }
  const tempoStorage = readYaml<{ storage: { trace: { backend: string } } }>('tempo.yaml');
  t.equal(tempoStorage.storage.trace.backend, 'local', 'tempo stores traces locally');
});
