// Tests for the flame graph: the merged call tree of a .cpuprofile (idle left out, windows honoured) and its SVG, on made-up and real V8 profiles.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { type CpuProfile, readProfile, summarizeProfile } from './cpu-profile.ts';
import { type FlameFrame, buildFlameTree, renderFlameGraph } from './flame-graph.ts';
import { ALL_SCENARIOS, writeReport } from './report.ts';
import type { BenchReport } from './report-types.ts';

const GW = 'file:///srv/portcullis/services/gateway/src/handler.ts';

/** (root) → serve → { check, check (same frame again: merged) }, plus (idle) and (garbage collector); 100 µs per sample. */
function profile(): CpuProfile {
  const node = (id: number, functionName: string, url: string, children: number[] = [], lineNumber = 0) => ({ id, callFrame: { functionName, url, lineNumber }, children });
  return {
    nodes: [
      node(1, '(root)', '', [2, 5, 6]),
      node(2, 'serve', GW, [3, 4], 9),
      node(3, 'check<T>&', GW, [], 41),
      node(4, 'check<T>&', GW, [], 41),
      node(5, '(idle)', ''),
      node(6, '(garbage collector)', ''),
    ],
    startTime: 1_000,
    samples: [3, 3, 4, 2, 5, 6],
    timeDeltas: [100, 100, 100, 100, 100, 100],
  };
}

const find = (f: FlameFrame, name: string): FlameFrame | undefined => (f.name === name ? f : f.children.map((c) => find(c, name)).find(Boolean));

t.test('the tree: self and total time per frame, same frames merged, idle left out, widest first', async (t) => {
  const root = buildFlameTree(profile());
  t.equal(root.totalUs, 500, 'busy time: every sample but the idle one');
  t.strictSame(
    root.children.map((c) => [c.name, c.totalUs]),
    [
      ['serve', 400],
      ['(garbage collector)', 100],
    ],
  );
  const serve = find(root, 'serve')!;
  t.equal(serve.selfUs, 100);
  t.equal(serve.where, 'services/gateway/src/handler.ts:10', 'the place is shortened to the workspace path, lines counted from 1');
  t.equal(serve.area, '@portcullis/gateway');
  t.equal(serve.children.length, 1, 'the two nodes of the same function at the same place are one frame');
  t.equal(serve.children[0]!.selfUs, 300);
  t.equal(find(root, '(idle)'), undefined);
});

t.test('a window keeps only the samples taken inside it', async (t) => {
  // Samples are at 1100, 1200, 1300, ... µs; hrtime readings are in ns.
  const root = buildFlameTree(profile(), { from: 1_050_000n, to: 1_250_000n });
  t.equal(root.totalUs, 200);
  t.strictSame(
    root.children.map((c) => [c.name, c.totalUs]),
    [['serve', 200]],
    'frames with no time in the window are dropped',
  );
});

t.test('the SVG: one box per frame with width in proportion, tooltips with the numbers, names escaped', async (t) => {
  const svg = renderFlameGraph(buildFlameTree(profile()), 'Flame <test>', 'made-up profile');
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="1200"/);
  t.match(svg, '<title>Flame &lt;test&gt;</title>');
  const boxes = [...svg.matchAll(/<g><title>([^<]*)<\/title><rect x="([\d.]+)" y="(\d+)" width="([\d.]+)"/g)].map((m) => ({ tip: m[1]!, x: Number(m[2]), y: Number(m[3]), w: Number(m[4]) }));
  t.equal(boxes.length, 4, 'root, serve, check, garbage collector');
  const box = (name: string) => boxes.find((b) => b.tip.startsWith(`${name} `) || b.tip.startsWith(`${name}(`))!;
  t.equal(box('(root)').w, 1200);
  t.equal(box('serve').w, 960, '400 of 500 µs');
  t.equal(box('(garbage collector)').x, 960, 'siblings follow each other');
  t.equal(box('check&lt;T&gt;&amp;').w, 720);
  t.ok(box('serve').y < box('(root)').y && box('check&lt;T&gt;&amp;').y < box('serve').y, 'callees above their callers, the root at the bottom');
  t.match(box('serve').tip, 'serve (services/gateway/src/handler.ts:10) — 0.40 ms, 80.0 % with callees; self 0.10 ms, 20.0 %');
  t.notMatch(svg, /check<T>/, 'no unescaped markup from a function name');
  t.match(svg, '0.5 ms busy time sampled');
});

t.test('a real V8 profile: the spinning function is where the time is, and the tree adds up to the summary', async (t) => {
  const dir = t.testdir({});
  const script = join(dir, 'spin.mjs');
  writeFileSync(script, 'function spinHere(ms) { const end = Date.now() + ms; let x = 0; while (Date.now() < end) x += Math.sqrt(x + 1); return x; }\nspinHere(1000);\n');
  // Without the test runner's NODE_OPTIONS (its loaders would be most of a short profile).
  execFileSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, script], { env: { ...process.env, NODE_OPTIONS: '' } });
  const file = join(dir, readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))!);
  const root = buildFlameTree(readProfile(file));
  const spin = find(root, 'spinHere');
  t.ok(spin, 'spinHere is in the tree');
  t.ok(spin!.totalUs / root.totalUs > 0.5, `spinHere has most of the busy time (${((100 * spin!.totalUs) / root.totalUs).toFixed(0)} %)`);
  t.equal(Math.round(root.totalUs / 1000), summarizeProfile(file).samplesMs, 'the root totals the busy time the summary reports');
  const svg = renderFlameGraph(root, 'spin');
  t.match(svg, />spinHere</, 'its box is wide enough to carry its name');
});

t.test('a full run writes its flame graphs next to its report and links them; the committed summary gets its own copies', async (t) => {
  const dir = t.testdir({});
  const report: BenchReport = {
    date: '2026-11-28T12:00:00.000Z',
    quick: false,
    machine: {},
    settings: {},
    // A full run: every scenario ran (only such a run replaces the committed summary).
    scenarios: ALL_SCENARIOS.map((id) => ({ id, title: `scenario ${id}`, comparisons: [], figures: [], targets: [], notes: [] })),
    profiles: [{ name: 'scenario 1: forward auth', flame: 'forward-auth', samplesMs: 1, top: [], byArea: [] }],
    failures: [],
  };
  const svg = renderFlameGraph(buildFlameTree(profile()), 'x');
  const written = writeReport(report, dir, new Map([['forward-auth', svg]]));
  const stamped = join(dir, 'results', '2026-11-28T12-00-00-flame-forward-auth.svg');
  t.ok(written.includes(stamped) && written.includes(join(dir, 'RESULTS-flame-forward-auth.svg')));
  t.equal(readFileSync(stamped, 'utf8'), svg);
  t.match(readFileSync(join(dir, 'RESULTS.md'), 'utf8'), '**scenario 1: forward auth** — 1 ms busy time sampled — flame graph: [`RESULTS-flame-forward-auth.svg`](RESULTS-flame-forward-auth.svg)');
  t.match(readFileSync(join(dir, 'results', '2026-11-28T12-00-00.md'), 'utf8'), '[`2026-11-28T12-00-00-flame-forward-auth.svg`](2026-11-28T12-00-00-flame-forward-auth.svg)');
});
