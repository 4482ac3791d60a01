// Renders a V8 .cpuprofile as a flame graph (self-contained SVG): each frame a box as wide as the time spent in it and what it called.
import { type CpuProfile, type ProfileNode, type ProfileWindow, areaOf, frameLocation, selfTimeByNode } from './cpu-profile.ts';

/** One frame of the merged call tree: time in it (self) and in it with everything it called (total), µs. */
export interface FlameFrame {
  name: string;
  /** Script and line (`libs/x/src/f.ts:12`), or '' for V8's own frames. */
  where: string;
  /** Package or workspace (`areaOf`), which picks the colour. */
  area: string;
  selfUs: number;
  totalUs: number;
  children: FlameFrame[];
}

/**
 * The profile's call tree, idle time left out, with the children of each frame that name the same
 * function at the same place merged, widest first. The root (`(root)`) totals the busy time sampled
 * (inside `window` if given).
 */
export function buildFlameTree(p: CpuProfile, window?: ProfileWindow): FlameFrame {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = selfTimeByNode(p, window);
  const childIds = new Set(p.nodes.flatMap((n) => n.children ?? []));
  const roots = p.nodes.filter((n) => !childIds.has(n.id));
  const frameOf = (node: ProfileNode): FlameFrame => ({
    name: node.callFrame.functionName || '(anonymous)',
    where: frameLocation(node.callFrame),
    area: areaOf(node.callFrame.url),
    selfUs: 0,
    totalUs: 0,
    children: [],
  });
  const root: FlameFrame = { name: '(root)', where: '', area: '(V8: gc, program, native)', selfUs: 0, totalUs: 0, children: [] };
  // Depth-first without recursion (call trees of real profiles can be hundreds of frames deep).
  const stack: Array<{ node: ProfileNode; into: FlameFrame }> = [];
  for (const r of roots) {
    // V8's own root node is "(root)"; its children are the real top frames.
    if (r.callFrame.functionName === '(root)') for (const id of r.children ?? []) stack.push({ node: byId.get(id)!, into: root });
    else stack.push({ node: r, into: root });
  }
  while (stack.length > 0) {
    const { node, into } = stack.pop()!;
    if (node.callFrame.functionName === '(idle)') continue;
    const fresh = frameOf(node);
    let frame = into.children.find((c) => c.name === fresh.name && c.where === fresh.where);
    if (!frame) {
      frame = fresh;
      into.children.push(frame);
    }
    frame.selfUs += self.get(node.id) ?? 0;
    for (const id of node.children ?? []) stack.push({ node: byId.get(id)!, into: frame });
  }
  total(root);
  return root;
}

/** Fills in `totalUs` bottom-up, drops frames with no time, and sorts children widest first. */
function total(root: FlameFrame): void {
  const order: FlameFrame[] = [];
  const walk = [root];
  while (walk.length > 0) {
    const f = walk.pop()!;
    order.push(f);
    walk.push(...f.children);
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const f = order[i]!;
    f.children = f.children.filter((c) => c.totalUs > 0).sort((a, b) => b.totalUs - a.totalUs);
    f.totalUs = f.selfUs + f.children.reduce((a, c) => a + c.totalUs, 0);
  }
}

const WIDTH = 1200;
const ROW = 17;
const TOP = 62;
/** Frames narrower than this (px) are not drawn; their time stays in their parent's box. */
const MIN_WIDTH_PX = 0.4;
/** Rough width of one character of the 11 px label font, to fit labels in their boxes. */
const CHAR_PX = 6.4;

/** Colour families by kind of code, so our code stands out from node's and from dependencies'. */
const FAMILIES: Array<{ label: string; test: (area: string) => boolean; hue: [number, number] }> = [
  { label: 'Portcullis (libs/, services/)', test: (a) => a.startsWith('@portcullis/'), hue: [0, 35] },
  { label: 'node core', test: (a) => a === 'node core', hue: [195, 225] },
  { label: 'V8: gc, program, native', test: (a) => a.startsWith('(V8'), hue: [0, 0] },
  { label: 'dependencies (node_modules)', test: () => true, hue: [90, 140] },
];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A stable colour per function within its family (the same function has the same colour in every graph). */
function colour(f: FlameFrame): string {
  const family = FAMILIES.find((fam) => fam.test(f.area))!;
  let h = 0;
  for (const ch of `${f.name}${f.where}`) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  if (family.hue[0] === family.hue[1]) return `hsl(0,0%,${62 + (h % 20)}%)`;
  const hue = family.hue[0] + (h % (family.hue[1] - family.hue[0]));
  return `hsl(${hue},${60 + (h % 25)}%,${58 + ((h >> 5) % 14)}%)`;
}

/**
 * The flame graph as SVG: the root at the bottom, callees above their callers, widths in proportion
 * to total time. Each box's tooltip names the function, its place, its total and self time (ms and %
 * of busy time); boxes wide enough carry their name.
 */
export function renderFlameGraph(root: FlameFrame, title: string, subtitle = ''): string {
  const busy = root.totalUs;
  const scale = busy > 0 ? WIDTH / busy : 0;
  // Laid out level by level, each frame starting where its parent does; then drawn upward from the bottom row.
  const laid: Array<{ f: FlameFrame; x: number; level: number; w: number }> = [];
  const queue: Array<{ f: FlameFrame; x: number; level: number }> = [{ f: root, x: 0, level: 0 }];
  for (let i = 0; i < queue.length; i++) {
    const { f, x, level } = queue[i]!;
    const w = f.totalUs * scale;
    if (w < MIN_WIDTH_PX) continue;
    laid.push({ f, x, level, w });
    let cx = x;
    for (const c of f.children) {
      queue.push({ f: c, x: cx, level: level + 1 });
      cx += c.totalUs * scale;
    }
  }
  const depth = laid.reduce((d, b) => Math.max(d, b.level), 0);
  const height = TOP + (depth + 1) * ROW + 24;
  const body = laid.map((b) => box(b.f, b.x, height - 24 - (b.level + 1) * ROW, b.w, busy)).join('\n');
  const legend = FAMILIES.map((fam, i) => {
    const fill = fam.hue[0] === fam.hue[1] ? 'hsl(0,0%,70%)' : `hsl(${(fam.hue[0] + fam.hue[1]) / 2},70%,64%)`;
    return `<rect x="${10 + i * 250}" y="40" width="12" height="12" fill="${fill}"/><text x="${28 + i * 250}" y="50">${esc(fam.label)}</text>`;
  }).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="monospace" font-size="11">
<title>${esc(title)}</title>
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="18" font-family="sans-serif" font-size="15" font-weight="bold">${esc(title)}</text>
<text x="10" y="34" font-family="sans-serif" fill="#555">${esc(subtitle ? `${subtitle} · ` : '')}${(busy / 1000).toFixed(1)} ms busy time sampled; width = time in a function and its callees; hover a box for its numbers</text>
${legend}
${body}
<text x="10" y="${height - 8}" font-family="sans-serif" fill="#777">frames under ${MIN_WIDTH_PX} px wide are left out (their time stays in their caller's box)</text>
</svg>
`;
}

function box(f: FlameFrame, x: number, y: number, w: number, busy: number): string {
  const pct = (us: number) => ((100 * us) / busy).toFixed(1);
  const tip = `${f.name}${f.where ? ` (${f.where})` : ''} — ${(f.totalUs / 1000).toFixed(2)} ms, ${pct(f.totalUs)} % with callees; self ${(f.selfUs / 1000).toFixed(2)} ms, ${pct(f.selfUs)} %`;
  const chars = Math.floor((w - 6) / CHAR_PX);
  const label = chars >= 3 ? (f.name.length <= chars ? f.name : `${f.name.slice(0, chars - 2)}..`) : '';
  const text = label ? `<text x="${(x + 3).toFixed(1)}" y="${y}" dy="12">${esc(label)}</text>` : '';
  return `<g><title>${esc(tip)}</title><rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${ROW - 1}" fill="${colour(f)}" rx="1"/>${text}</g>`;
}
