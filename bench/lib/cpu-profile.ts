// Reads a V8 .cpuprofile (from node --cpu-prof) into the top self-time functions and the share of each code area.
import { readFileSync } from 'node:fs';

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  /** Ids of the nodes it called (each node is one call path). */
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  /** Monotonic clock (µs) of the first sample; the same clock as `process.hrtime`. */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Samples taken between two `process.hrtime.bigint()` readings (ns). */
export interface ProfileWindow {
  from: bigint;
  to: bigint;
}

/** µs of samples per node id (the node on top of the stack when sampled), inside `window` if given. */
export function selfTimeByNode(p: CpuProfile, window?: ProfileWindow): Map<number, number> {
  const self = new Map<number, number>();
  const from = window ? Number(window.from / 1000n) : Number.NEGATIVE_INFINITY;
  const to = window ? Number(window.to / 1000n) : Number.POSITIVE_INFINITY;
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    if (at < from || at > to) continue;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  return self;
}

/** `libs/x/src/f.ts:12`: a frame's script (shortened to its package or workspace path) and line. */
export function frameLocation(cf: ProfileNode['callFrame']): string {
  return cf.url ? `${cf.url.replace(/^file:\/\/.*?\/(node_modules|libs|services)\//, '$1/')}:${cf.lineNumber + 1}` : '';
}

/** A profile's summary: busy time sampled, top functions by self time, and self time per area (package or workspace). */
export interface ProfileSummary {
  samplesMs: number;
  top: Array<{ fn: string; where: string; selfPct: number }>;
  byArea: Array<{ area: string; selfPct: number }>;
}

/** Which package or workspace a script URL belongs to. */
export function areaOf(url: string): string {
  if (url === '') return '(V8: gc, program, native)';
  if (url.startsWith('node:')) return 'node core';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm && !nm[1]!.startsWith('@portcullis/')) return nm[1]!;
  const ws = /\/(libs|services)\/([^/]+)\//.exec(url) ?? /@portcullis\/([^/]+)\//.exec(url);
  if (ws) return `@portcullis/${ws[2] ?? ws[1]}`;
  return url.replace(/^file:\/\//, '');
}

/**
 * Top `n` functions by self time, idle excluded; percentages are of busy (non-idle) time.
 * `window` keeps only the samples taken between two `process.hrtime.bigint()` readings (ns), so
 * start-up (module loading, compilation) and warm-up can be left out.
 */
export function summarizeProfile(file: string, n = 12, window?: ProfileWindow): ProfileSummary {
  const p = readProfile(file);
  const byId = new Map(p.nodes.map((node) => [node.id, node]));
  const self = selfTimeByNode(p, window);
  const fns = new Map<string, { fn: string; where: string; us: number }>();
  const areas = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') continue;
    busy += us;
    const where = frameLocation(cf);
    const key = `${cf.functionName}|${where}`;
    const e = fns.get(key) ?? { fn: cf.functionName || '(anonymous)', where, us: 0 };
    e.us += us;
    fns.set(key, e);
    const area = areaOf(cf.url);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((1000 * us) / busy) / 10;
  return {
    samplesMs: Math.round(busy / 1000),
    top: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, n)
      .map((e) => ({ fn: e.fn, where: e.where, selfPct: pct(e.us) })),
    byArea: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10)
      .map(([area, us]) => ({ area, selfPct: pct(us) })),
  };
}

/** A .cpuprofile file, parsed. */
export function readProfile(file: string): CpuProfile {
  return JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
}
