// Draws Grafana-like panels (stat, timeseries, heatmap) as SVG from computed series, laid out by each panel's gridPos.

const PALETTE = ['#7EB26D', '#EAB839', '#6ED0E0', '#EF843C', '#E24D42', '#1F78C1', '#BA43A9', '#705DA0', '#508642', '#CCA300'];
const NAMED = { green: '#73BF69', orange: '#FF9830', red: '#F2495C', yellow: '#FADE2A', blue: '#5794F2' };
/** Grafana's grid: 24 columns, 30 px rows, 8 px gaps. */
const ROW = 30;
const GAP = 8;

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

/** Formats `v` in a Grafana unit (`none`, `ops`, `s`, `percentunit`). */
export function formatValue(v, unit, decimals) {
  if (v === undefined || Number.isNaN(v)) return '–';
  const num = (x, d) => (d !== undefined ? x.toFixed(d) : Number.isInteger(x) ? String(x) : Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3).replace(/\.?0+$/, ''));
  if (unit === 'percentunit') return `${(v * 100).toFixed(decimals ?? 1)}%`;
  if (unit === 's') return v < 1 ? `${num(v * 1000, decimals)} ms` : `${num(v, decimals ?? 2)} s`;
  if (unit === 'ops') return `${num(v, decimals)} ops/s`;
  return num(v, decimals);
}

function thresholdColor(panel, v) {
  const steps = panel.fieldConfig?.defaults?.thresholds?.steps ?? [];
  let color = 'green';
  for (const s of steps) if (s.value === null || v >= s.value) color = s.color;
  return NAMED[color] ?? color;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const clock = (t) => new Date(t).toTimeString().slice(0, 8);
/** Time-axis label `i` of 0..6: the outer ones are anchored inside the plot so they are not cut off. */
const anchor = (i) => (i === 0 ? 'start' : i === 6 ? 'end' : 'middle');

function statBody(panel, w, h, { last, spark }) {
  const unit = panel.fieldConfig?.defaults?.unit;
  const decimals = panel.fieldConfig?.defaults?.decimals;
  const color = last === undefined ? '#ccccdc' : thresholdColor(panel, last);
  let area = '';
  const pts = spark.filter((p) => Number.isFinite(p.v));
  if (pts.length > 1) {
    const t0 = pts[0].t;
    const t1 = pts.at(-1).t;
    const max = Math.max(...pts.map((p) => p.v), 1e-12);
    const xy = pts.map((p) => [((p.t - t0) / (t1 - t0 || 1)) * w, h - (p.v / max) * (h * 0.45)]);
    const d = `M0,${h} ${xy.map(([x, y]) => `L${x.toFixed(1)},${y.toFixed(1)}`).join(' ')} L${w},${h} Z`;
    area = `<path d="${d}" fill="${color}" fill-opacity="0.18" stroke="${color}" stroke-opacity="0.6"/>`;
  }
  const text = last === undefined ? (panel.fieldConfig?.defaults?.noValue ?? 'No data') : formatValue(last, unit, decimals);
  return `${area}<text x="${w / 2}" y="${h / 2 + 4}" text-anchor="middle" dominant-baseline="middle" font-size="${Math.min(40, h * 0.45)}" font-weight="500" fill="${color}">${esc(text)}</text>`;
}

function timeseriesBody(panel, w, h, { series, t0, t1 }) {
  const defaults = panel.fieldConfig?.defaults ?? {};
  const custom = defaults.custom ?? {};
  const unit = defaults.unit;
  const stacked = custom.stacking?.mode === 'normal';
  // The legend table takes at most 40 % of the panel (Grafana scrolls it; a picture cannot): extra rows become "+N more".
  const fits = Math.max(1, Math.floor((h * 0.4 - 20) / 18));
  const legendRows = series.length > fits ? fits - 1 : series.length;
  const hidden = series.length - legendRows;
  const legendH = series.length ? 20 + (legendRows + (hidden ? 1 : 0)) * 18 : 0;
  const plotH = Math.max(40, h - legendH - 22);
  const axisW = 64;
  const plotW = w - axisW - 8;
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p.t)))].sort((a, b) => a - b);
  // Stacked series are drawn on top of each other: each point's base is the sum of the series before it.
  const base = new Map(times.map((t) => [t, 0]));
  const drawn = series.map((s) => {
    const byT = new Map(s.points.map((p) => [p.t, p.v]));
    const pts = times
      .filter((t) => byT.has(t))
      .map((t) => {
        const lo = stacked ? base.get(t) : 0;
        const hi = lo + byT.get(t);
        if (stacked) base.set(t, hi);
        return { t, lo, hi };
      });
    return { ...s, pts };
  });
  const dataMax = Math.max(0, ...drawn.flatMap((s) => s.pts.map((p) => p.hi)));
  const yMax = defaults.max ?? niceMax(dataMax);
  const yMin = defaults.min ?? 0;
  const X = (t) => axisW + ((t - t0) / (t1 - t0 || 1)) * plotW;
  const Y = (v) => 4 + plotH - ((v - yMin) / (yMax - yMin || 1)) * plotH;
  let out = '';
  for (let i = 0; i <= 4; i++) {
    const v = yMin + ((yMax - yMin) * i) / 4;
    out += `<line x1="${axisW}" x2="${axisW + plotW}" y1="${Y(v)}" y2="${Y(v)}" stroke="#2c3235"/>`;
    out += `<text x="${axisW - 6}" y="${Y(v) + 4}" text-anchor="end" font-size="11" fill="#8e8e8e">${esc(formatValue(v, unit, unit === 'percentunit' ? 0 : undefined))}</text>`;
  }
  for (let i = 0; i <= 6; i++) {
    const t = t0 + ((t1 - t0) * i) / 6;
    out += `<text x="${X(t)}" y="${plotH + 20}" text-anchor="${anchor(i)}" font-size="11" fill="#8e8e8e">${clock(t)}</text>`;
  }
  const step = custom.lineInterpolation === 'stepAfter';
  const fill = (custom.fillOpacity ?? 0) / 100;
  drawn.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    if (s.pts.length === 0) return;
    const line = (key) =>
      s.pts
        .map((p, j) => {
          const x = X(p.t).toFixed(1);
          const y = Y(p[key]).toFixed(1);
          if (j === 0) return `M${x},${y}`;
          return step ? `H${x} V${y}` : `L${x},${y}`;
        })
        .join(' ');
    const top = line('hi');
    if (fill > 0) {
      const back = [...s.pts].reverse().map((p) => `L${X(p.t).toFixed(1)},${Y(p.lo).toFixed(1)}`).join(' ');
      out += `<path d="${top} ${back} Z" fill="${color}" fill-opacity="${fill}" stroke="none"/>`;
    }
    out += `<path d="${top}" fill="none" stroke="${color}" stroke-width="${custom.lineWidth ?? 1}"/>`;
  });
  if (legendRows) {
    const ly = plotH + 34;
    ['Mean', 'Max', 'Last'].forEach((label, j) => {
      out += `<text x="${w - 8 - (2 - j) * 84}" y="${ly}" text-anchor="end" font-size="11" fill="#8e8e8e">${label}</text>`;
    });
    if (hidden) out += `<text x="28" y="${ly + 18 * (legendRows + 1)}" font-size="12" fill="#8e8e8e">+${hidden} more series</text>`;
    drawn.slice(0, legendRows).forEach((s, i) => {
      const vals = s.points.map((p) => p.v);
      const mean = vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : undefined;
      const max = vals.length ? Math.max(...vals) : undefined;
      const y = ly + 18 * (i + 1);
      const cells = [mean, max, vals.at(-1)].map((v) => formatValue(v, unit, unit === 'percentunit' ? 1 : 2));
      out += `<rect x="8" y="${y - 9}" width="14" height="4" fill="${PALETTE[i % PALETTE.length]}"/>`;
      out += `<text x="28" y="${y}" font-size="12" fill="#ccccdc">${esc(s.name)}</text>`;
      cells.forEach((c, j) => {
        out += `<text x="${w - 8 - (2 - j) * 84}" y="${y}" text-anchor="end" font-size="12" fill="#ccccdc">${esc(c)}</text>`;
      });
    });
  }
  if (!drawn.some((s) => s.pts.length)) out += `<text x="${w / 2}" y="${plotH / 2}" text-anchor="middle" fill="#8e8e8e">No data</text>`;
  return out;
}

function heatmapBody(_panel, w, h, { buckets, t0, t1 }) {
  // buckets: [{ le, points: [{ t, v }] }] with cumulative counts; drawn per bucket (de-accumulated).
  const axisW = 64;
  const plotW = w - axisW - 8;
  const plotH = h - 26;
  const sorted = [...buckets].sort((a, b) => (a.le === '+Inf' ? 1 : b.le === '+Inf' ? -1 : Number(a.le) - Number(b.le)));
  const times = [...new Set(sorted.flatMap((b) => b.points.map((p) => p.t)))].sort((a, b) => a - b);
  const cells = [];
  let max = 0;
  for (const t of times) {
    let prev = 0;
    sorted.forEach((b, row) => {
      const cum = b.points.find((p) => p.t === t)?.v ?? prev;
      const v = Math.max(0, cum - prev);
      prev = cum;
      cells.push({ t, row, v });
      max = Math.max(max, v);
    });
  }
  const rowH = plotH / (sorted.length || 1);
  const colW = plotW / (times.length || 1);
  let out = '';
  for (const c of cells) {
    if (c.v <= 0) continue;
    const a = 0.25 + 0.75 * (c.v / (max || 1));
    const x = axisW + ((c.t - t0) / (t1 - t0 || 1)) * (plotW - colW);
    const y = 4 + plotH - (c.row + 1) * rowH;
    out += `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(colW + 0.5).toFixed(1)}" height="${(rowH - 1).toFixed(1)}" fill="#FF9830" fill-opacity="${a.toFixed(2)}"/>`;
  }
  sorted.forEach((b, row) => {
    if (row % 2) return;
    const label = b.le === '+Inf' ? '+Inf' : formatValue(Number(b.le), 's');
    out += `<text x="${axisW - 6}" y="${4 + plotH - row * rowH - rowH / 2 + 4}" text-anchor="end" font-size="10" fill="#8e8e8e">${esc(label)}</text>`;
  });
  for (let i = 0; i <= 6; i++) {
    const t = t0 + ((t1 - t0) * i) / 6;
    out += `<text x="${axisW + (plotW * i) / 6}" y="${plotH + 20}" text-anchor="${anchor(i)}" font-size="11" fill="#8e8e8e">${clock(t)}</text>`;
  }
  if (!cells.some((c) => c.v > 0)) out += `<text x="${w / 2}" y="${plotH / 2}" text-anchor="middle" fill="#8e8e8e">No data</text>`;
  return out;
}

/** One panel as an absolutely positioned block with an SVG body; `data` depends on the panel type. */
export function renderPanel(panel, data, colW, top) {
  const { x, y, w, h } = panel.gridPos;
  const left = 16 + x * colW;
  const width = w * colW - GAP;
  const height = h * ROW + (h - 1) * GAP;
  const bodyH = height - 34;
  const bodyW = width - 16;
  const body =
    panel.type === 'stat'
      ? statBody(panel, bodyW, bodyH, data)
      : panel.type === 'heatmap'
        ? heatmapBody(panel, bodyW, bodyH, data)
        : timeseriesBody(panel, bodyW, bodyH, data);
  return `<div class="panel" style="left:${left}px;top:${top + y * (ROW + GAP)}px;width:${width}px;height:${height}px">
<div class="title">${esc(panel.title)}</div>
<svg width="${bodyW}" height="${bodyH}" font-family="Inter, Helvetica, Arial, sans-serif">${body}</svg>
</div>`;
}

/** The whole dashboard page: header with title and variables, then every panel at its grid position. */
export function renderDashboardHtml(dashboard, panelsData, { width, subtitle }) {
  const colW = (width - 32 + GAP) / 24;
  const top = 96;
  const bottom = Math.max(...dashboard.panels.map((p) => p.gridPos.y + p.gridPos.h));
  const height = top + bottom * (ROW + GAP) + 16;
  const vars = (dashboard.templating?.list ?? [])
    .map((v) => `<span class="var"><b>${esc(v.label ?? v.name)}</b>${esc(v.type === 'datasource' ? 'Prometheus' : 'All')}</span>`)
    .join('');
  const panels = dashboard.panels.map((p) => renderPanel(p, panelsData.get(p.id), colW, top)).join('\n');
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body{margin:0;background:#111217;color:#ccccdc;font-family:Inter,Helvetica,Arial,sans-serif;width:${width}px;height:${height}px;position:relative}
h1{font-size:18px;font-weight:500;margin:0;position:absolute;left:16px;top:14px}
.sub{position:absolute;left:16px;top:40px;font-size:12px;color:#8e8e8e}
.vars{position:absolute;left:16px;top:62px;font-size:12px}
.var{display:inline-block;margin-right:8px;border:1px solid #2c3235;border-radius:2px;background:#181b1f}
.var b{display:inline-block;padding:3px 8px;background:#22252b;font-weight:500;margin-right:8px}.var{padding-right:8px}
.panel{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:2px;box-sizing:border-box;padding:0 8px}
/* Crisp (non-antialiased) shapes keep the PNG under 300 KB; text stays smooth. */
svg path,svg rect,svg line{shape-rendering:crispEdges}
.title{font-size:14px;font-weight:500;height:32px;line-height:32px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
</style></head><body>
<h1>${esc(dashboard.title)}</h1>
<div class="sub">${esc(subtitle)}</div>
<div class="vars">${vars}</div>
${panels}
</body></html>`;
}
