// Writes a bench run: results/<date>.json, .md and .svg, and the committed summary bench/RESULTS.md.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { freemem, loadavg, totalmem, type as osType, release } from 'node:os';
import { join } from 'node:path';
import { CONTENDED_FACTOR, type ContentionAssessment, machineKind } from './contention.ts';
import { STOLEN_RETRIES_PER_ROUND, type TargetResult } from './load.ts';
import { STEAL_CONTENDED } from './processes.ts';
import type { BenchReport, TargetCheck } from './report-types.ts';
import { type ChartPanel, renderLatencyChart } from './svg-chart.ts';

/** What the machine is: CPU, cores, memory, OS, Node and server versions. */
export function describeMachine(): Record<string, string> {
  // Some tools print their version on stderr (nginx -v): read both streams.
  const version = (cmd: string, args: string[], pick: RegExp): string => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    return pick.exec(out)?.[1] ?? 'unknown';
  };
  return {
    cpu: `${machineKind()} (shared by load generator and servers)`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB (${(freemem() / 2 ** 30).toFixed(1)} GiB free at start)`,
    os: `${osType()} ${release()}`,
    // Other jobs on the machine shift absolute numbers; the load at start says how busy it was.
    'load average at start (1/5/15 min)': loadavg()
      .map((l) => l.toFixed(2))
      .join(' / '),
    node: process.version,
    nginx: version('/usr/sbin/nginx', ['-v'], /nginx\/(\S+)/),
    'nats-server': version('nats-server', ['--version'], /v?(\d+\.\d+\.\d+)/),
    'redis-server': version('redis-server', ['--version'], /v=(\S+)/),
  };
}

const cell = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : '–');

/** The Markdown report. */
export function renderMarkdown(r: BenchReport, chartFile: string, flameFile: (slug: string) => string = (slug) => `flame-${slug}.svg`): string {
  const out: string[] = [];
  out.push(`# Portcullis benchmark — ${r.date}${r.quick ? ' (quick mode: indicative only)' : ''}`, '');
  out.push('Every scenario measures its baseline in the same run, alternated with the subject (A/B/A/B); compare **ratios**, not absolute numbers across runs (±20 % drift on this machine).', '');
  out.push('## Machine', '');
  for (const [k, v] of Object.entries(r.machine)) out.push(`- ${k}: ${v}`);
  out.push('', `Settings: ${Object.entries(r.settings).map(([k, v]) => `${k}=${v}`).join(', ')}`, '');
  out.push(...renderContention(r));
  const checks = r.scenarios.flatMap((s) => s.targets.map((t) => ({ s, t })));
  if (checks.length) {
    out.push('## Targets', '', '| scenario | what | target | measured | met |', '| --- | --- | --- | --- | --- |');
    for (const { s, t } of checks) out.push(`| ${s.id} | ${t.what} | ${t.target} | ${t.measured} | ${verdict(t)} |`);
    out.push('');
  }
  for (const s of r.scenarios) {
    out.push(`## ${s.id}. ${s.title}`, '');
    for (const c of s.comparisons) {
      const base = c.targets.find((t) => t.label === c.baseline)!;
      out.push(`**${c.name}**`, '', '| target | req/s | × baseline | CPU µs/req | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
      for (const t of c.targets) {
        out.push(
          `| ${t.label}${t.label === c.baseline ? ' (baseline)' : ''} | ${cell(t.rps)} | ${cell(t.rps / base.rps, 2)} | ${cell(t.cpuUs, 1)} | ${cell(t.latency.p50, 2)} | ${cell(t.latency.p90, 2)} | ${cell(t.latency.p99, 2)} | ${cell(t.latency.p99_9, 2)} | ${t.errors} |`,
        );
      }
      out.push('', ...renderCpuSplit(c.targets));
    }
    if (s.figures.length) {
      out.push('| figure | value |', '| --- | --- |');
      for (const f of s.figures) out.push(`| ${f.name} | ${f.value}${f.unit ? ` ${f.unit}` : ''} |`);
      out.push('');
    }
    for (const n of s.notes) out.push(`- ${n}`);
    out.push('');
  }
  const failed = r.failures;
  if (failed.length) {
    out.push('## Scenarios that failed to run', '');
    for (const f of failed) out.push(`- ${f.scenario}: ${f.error.split('\n')[0]}`);
    out.push('');
  }
  if (r.profiles.length) {
    out.push('## CPU profile of the gateway (`--cpu-prof`, one run each)', '');
    for (const p of r.profiles) {
      const flame = p.flame ? ` — flame graph: [\`${flameFile(p.flame)}\`](${flameFile(p.flame)})` : '';
      out.push(`**${p.name}** — ${p.samplesMs} ms busy time sampled${flame}`, '', '| self % | function | where |', '| ---: | --- | --- |');
      for (const f of p.top) out.push(`| ${f.selfPct} | \`${f.fn}\` | ${f.where} |`);
      out.push('', `By area: ${p.byArea.map((a) => `${a.area} ${a.selfPct} %`).join(', ')}`, '');
    }
  }
  out.push(`Latency distributions: \`${chartFile}\` (percentile curves per scenario, log scale).`, '');
  return out.join('\n');
}

/** A line saying where each target's CPU went (main thread, other threads, GC) and its page faults, when recorded; else nothing. */
export function renderCpuSplit(targets: TargetResult[]): string[] {
  const parts = targets.flatMap((t) => {
    const what: string[] = [];
    if (t.threads) what.push(`main thread ${cell(t.threads.mainUs, 1)} µs, other threads ${cell(t.threads.helpersUs, 1)} µs`);
    if (t.gc) what.push(`GC pauses ${cell(t.gc.us, 1)} µs (${cell(t.gc.per1k, 1)} collections per 1 000 requests, ${cell(t.gc.fullPer1k, 1)} of them full)`);
    if (t.faults !== undefined) what.push(`${cell(t.faults, 2)} page faults`);
    return what.length ? [`${t.label}: ${what.join(', ')}`] : [];
  });
  return parts.length ? [`Per request (median of runs): ${parts.join('; ')}.`, ''] : [];
}

/** "yes", "**no**", either marked when its rounds fell on both sides, and why it is no evidence (a contended baseline). */
export function verdict(t: TargetCheck): string {
  const met = `${t.met ? 'yes' : '**no**'}${t.onTheLine ? ', on the line (its rounds fell on both sides)' : ''}`;
  return t.contended ? `${met}, but **contended** (${t.contended})` : met;
}

/** The "Machine steadiness" section: each baseline's CPU per request against the quiet reference. */
function renderContention(r: BenchReport): string[] {
  const c = r.contention;
  if (!c) return [];
  const out = ['## Machine steadiness', ''];
  if (c.contended && !c.steal.some((s) => s.contended) && !c.comparisons.some((s) => s.contended)) {
    out.push('**A scenario found the host stalled** while measuring one of its targets (see the targets table: "…, but **contended**"), so this run did not replace RESULTS.md.', '');
  }
  out.push(...renderSteal(c));
  if (!c.source) {
    out.push(`No quiet reference is recorded for this machine kind (${c.machine}) in bench/quiet-reference.json, so this run's CPU per request could not be checked against a quiet host's. On a quiet host, \`npm run bench -- --record-quiet-reference\` records one.`, '');
    return out;
  }
  const cpuContended = c.comparisons.some((s) => s.contended);
  out.push(
    cpuContended
      ? `**This run was contended**: a baseline needed more than ${CONTENDED_FACTOR}× the CPU per request it needs on a quiet host of this kind, so the cores were slowed by other work on the host. The ratio targets judged from those comparisons are no evidence either way; run again when the host is quiet.`
      : `Every baseline stayed within ${CONTENDED_FACTOR}× the CPU per request it needs on a quiet host of this kind.`,
    '',
    `Quiet reference: ${c.source} (${c.machine}).`,
    '',
    '| comparison | baseline | quiet CPU µs/req | this run, per round | worst × quiet | contended |',
    '| --- | --- | ---: | --- | ---: | --- |',
  );
  for (const s of c.comparisons) {
    out.push(`| ${s.comparison} | ${s.baseline} | ${s.quietCpuUs.toFixed(1)} | ${s.roundsCpuUs.map((us) => cell(us, 1)).join(', ')} | ${s.worst.toFixed(2)} | ${s.contended ? '**yes**' : 'no'} |`);
  }
  out.push('');
  return out;
}

/** Steal per comparison: the time the hypervisor gave the host's cores to other guests, worst run. */
function renderSteal(c: ContentionAssessment): string[] {
  const measured = c.steal.filter((s) => Number.isFinite(s.worst));
  if (measured.length === 0) return ['Steal time was not measured (no /proc/stat).', ''];
  const stalled = measured.filter((s) => s.contended);
  const out = [
    stalled.length > 0
      ? `**The hypervisor stalled this host**: in a run of ${stalled.map((s) => s.comparison).join('; ')}, more than ${STEAL_CONTENDED * 100} % of the cores' time went to other guests (steal, /proc/stat). Steal comes in bursts that pause every process at once, so the targets of those comparisons are no evidence either way.`
      : `Steal (the cores' time the hypervisor gave to other guests) stayed at or under ${STEAL_CONTENDED * 100} % in every run kept.`,
    '',
    `A round with a run above ${STEAL_CONTENDED * 100} % steal is measured again (up to ${STOLEN_RETRIES_PER_ROUND} times per round asked for); its runs stay in the JSON as \`stolen\`, out of the figures.`,
    '',
    '| comparison | worst steal in a run kept | rounds measured again |',
    '| --- | ---: | ---: |',
  ];
  for (const s of c.steal) out.push(`| ${s.comparison} | ${Number.isFinite(s.worst) ? `${(s.worst * 100).toFixed(1)} %` : '–'}${s.contended ? ' **stalled**' : ''} | ${s.remeasured} |`);
  out.push('');
  return out;
}

/** Panels for the SVG: one per comparison and per extra distribution. */
export function chartPanels(r: BenchReport): ChartPanel[] {
  const panels: ChartPanel[] = [];
  for (const s of r.scenarios) {
    for (const c of s.comparisons) panels.push({ title: `${s.id}. ${c.name}`, series: c.targets.map((t) => ({ label: `${t.label} (${Math.round(t.rps)} req/s)`, percentiles: t.latency })) });
    if (s.distributions?.length) panels.push({ title: `${s.id}. ${s.title}`, series: s.distributions });
  }
  return panels;
}

/** The scenarios of a full run: only a run where all of them ran may replace the committed summary. */
export const ALL_SCENARIOS = [1, 2, 3, 4, 5, 6] as const;

/** Why this run leaves bench/RESULTS.md as it was (quick, contended, or not every scenario ran), or null when it replaces it. */
export function summaryKeptBecause(r: BenchReport): string | null {
  if (r.quick) return 'this was a quick run';
  if (r.contention?.contended) return 'this run was contended';
  const ran = new Set(r.scenarios.map((s) => s.id));
  const missing = ALL_SCENARIOS.filter((id) => !ran.has(id));
  if (missing.length > 0) return `not every scenario ran (missing: ${missing.join(', ')}), and the summary is a whole run`;
  return null;
}

/**
 * Writes results/<date>.json, .md and .svg, and each flame graph (by slug) as results/<date>-flame-<slug>.svg;
 * a run of every scenario (not --quick) on a host not found contended also refreshes the committed summary
 * bench/RESULTS.md, its chart bench/RESULTS.svg and flame graphs bench/RESULTS-flame-<slug>.svg, so a
 * contended run cannot pass for a quiet one. Returns the paths written.
 */
export function writeReport(r: BenchReport, benchDir: string, flames: ReadonlyMap<string, string> = new Map()): string[] {
  const dir = join(benchDir, 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = r.date.replace(/[:]/g, '-').replace(/\..*$/, '');
  const svg = renderLatencyChart(chartPanels(r), `Portcullis latency distributions — ${r.date}`);
  const files: Array<[string, string]> = [
    [join(dir, `${stamp}.json`), `${JSON.stringify(r, null, 2)}\n`],
    [join(dir, `${stamp}.md`), renderMarkdown(r, `${stamp}.svg`, (slug) => `${stamp}-flame-${slug}.svg`)],
    [join(dir, `${stamp}.svg`), svg],
    ...[...flames].map(([slug, flame]): [string, string] => [join(dir, `${stamp}-flame-${slug}.svg`), flame]),
  ];
  if (summaryKeptBecause(r) === null) {
    files.push([join(benchDir, 'RESULTS.md'), renderMarkdown(r, 'RESULTS.svg', (slug) => `RESULTS-flame-${slug}.svg`)], [join(benchDir, 'RESULTS.svg'), svg]);
    for (const [slug, flame] of flames) files.push([join(benchDir, `RESULTS-flame-${slug}.svg`), flame]);
  }
  for (const [file, text] of files) writeFileSync(file, text);
  return files.map(([file]) => file);
}
