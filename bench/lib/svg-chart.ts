// Draws latency distributions (percentile curves, log-scale latency) as one self-contained SVG, one panel per comparison.
import { PERCENTILES } from './load.ts';

/** One panel: a title and its series of percentile → latency (ms). */
export interface ChartPanel {
  title: string;
  series: Array<{ label: string; percentiles: Record<string, number> }>;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const LABELS: Record<string, string> = { p1: '1', p10: '10', p25: '25', p50: '50', p75: '75', p90: '90', p97_5: '97.5', p99: '99', p99_9: '99.9', max: 'max' };
const W = 520;
const H = 300;
const M = { left: 56, right: 16, top: 34, bottom: 84 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The whole chart: panels in two columns. */
export function renderLatencyChart(panels: ChartPanel[], title: string): string {
  const cols = 2;
  const rows = Math.ceil(panels.length / cols);
  const width = W * cols;
  const height = H * rows + 40;
  const body = panels.map((p, i) => `<g transform="translate(${(i % cols) * W},${40 + Math.floor(i / cols) * H})">${panel(p)}</g>`).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">
<title>${esc(title)}</title>
<rect width="100%" height="100%" fill="#fff"/>
<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>
${body}
</svg>
`;
}

function panel(p: ChartPanel): string {
  const keys = PERCENTILES.filter((k) => p.series.some((s) => Number.isFinite(s.percentiles[k])));
  const values = p.series.flatMap((s) => keys.map((k) => s.percentiles[k]!)).filter((v) => Number.isFinite(v) && v > 0);
  const lo = Math.max(0.01, Math.min(...values, 1));
  const hi = Math.max(...values, lo * 10);
  const decades = { from: Math.floor(Math.log10(lo)), to: Math.ceil(Math.log10(hi)) };
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (i: number) => M.left + (keys.length === 1 ? pw / 2 : (i * pw) / (keys.length - 1));
  const y = (v: number) => M.top + ph - ((Math.log10(Math.max(v, 10 ** decades.from)) - decades.from) / (decades.to - decades.from)) * ph;
  const parts: string[] = [];
  parts.push(`<text x="${W / 2}" y="18" text-anchor="middle" font-size="12" font-weight="bold">${esc(p.title)}</text>`);
  for (let d = decades.from; d <= decades.to; d++) {
    const v = 10 ** d;
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    parts.push(`<text x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end">${v >= 1 ? v : v.toFixed(-d)} ms</text>`);
  }
  keys.forEach((k, i) => {
    parts.push(`<line x1="${x(i)}" x2="${x(i)}" y1="${M.top}" y2="${M.top + ph}" stroke="#f0f0f0"/>`);
    parts.push(`<text x="${x(i)}" y="${M.top + ph + 14}" text-anchor="middle">${LABELS[k]}</text>`);
  });
  parts.push(`<text x="${M.left + pw / 2}" y="${M.top + ph + 30}" text-anchor="middle" fill="#555">percentile</text>`);
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  p.series.forEach((s, si) => {
    const color = COLORS[si % COLORS.length]!;
    const pts = keys
      .map((k, i) => [x(i), s.percentiles[k]!] as const)
      .filter(([, v]) => Number.isFinite(v))
      .map(([px, v]) => `${px.toFixed(1)},${y(v).toFixed(1)}`);
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(' ')}"/>`);
    for (const pt of pts) {
      const [cx, cy] = pt.split(',');
      parts.push(`<circle cx="${cx}" cy="${cy}" r="2.5" fill="${color}"/>`);
    }
    const ly = M.top + ph + 44 + si * 13;
    parts.push(`<rect x="${M.left}" y="${ly - 8}" width="10" height="10" fill="${color}"/>`);
    parts.push(`<text x="${M.left + 16}" y="${ly + 1}">${esc(s.label)}</text>`);
  });
  return parts.join('\n');
}
