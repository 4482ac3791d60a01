// A small PromQL subset (selectors, rate/increase, sum/max/min by, histogram_quantile, clamp_min, `/`) evaluated over scraped samples.
// Enough for the expressions of infra/observability/grafana/dashboards/portcullis-sessions.json; anything else throws.

/** Parses Prometheus text exposition into samples `{ name, labels, value }` (comments skipped). */
export function parseExposition(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/**
 * Samples of many scrapes, aligned by scrape index. `add(t, instance, samples)` appends one scrape of one
 * target; series first seen later are filled with undefined before their first sample.
 */
export class SampleStore {
  times = [];
  series = new Map();

  /** Starts scrape number `times.length` at wall-clock `t` (ms). */
  beginScrape(t) {
    this.times.push(t);
  }

  /** Adds one target's samples to the current scrape, labelled with `instance`. */
  add(instance, samples) {
    const k = this.times.length - 1;
    for (const s of samples) {
      const labels = { ...s.labels, instance };
      const key = seriesKey(s.name, labels);
      let entry = this.series.get(key);
      if (!entry) {
        entry = { name: s.name, labels, values: [] };
        this.series.set(key, entry);
      }
      entry.values[k] = s.value;
    }
  }
}

function seriesKey(name, labels) {
  return `${name}{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',')}}`;
}

// Counters (and histogram parts) only grow. prom-client creates a label set at its first increment, so a
// series absent from earlier scrapes of a running process was 0 then; counting that first step keeps a
// one-off event visible (Prometheus itself would miss it).
const isCounter = (name) => /_(total|bucket|count|sum)$/.test(name);

function tokenize(src) {
  const tokens = [];
  const re = /\s*(?:(\d+(?:\.\d+)?(?:e-?\d+)?)|([a-zA-Z_:][\w:]*)|("(?:[^"\\]|\\.)*")|(=~|!~|!=|[=(){},/])|(\[[^\]]*\]))/gy;
  while (re.lastIndex < src.length) {
    const m = re.exec(src);
    if (!m) break;
    if (m[1]) tokens.push({ t: 'num', v: Number(m[1]) });
    else if (m[2]) tokens.push({ t: 'id', v: m[2] });
    else if (m[3]) tokens.push({ t: 'str', v: JSON.parse(m[3]) });
    else if (m[4]) tokens.push({ t: 'op', v: m[4] });
    else if (m[5]) tokens.push({ t: 'range', v: m[5].slice(1, -1) });
  }
  if (src.slice(re.lastIndex).trim()) throw new Error(`cannot tokenize PromQL near: ${src.slice(re.lastIndex)}`);
  return tokens;
}

const AGGREGATIONS = new Set(['sum', 'max', 'min']);
const FUNCTIONS = new Set(['rate', 'increase', 'histogram_quantile', 'clamp_min']);

/** Parses one expression of the supported subset into a tree. */
export function parsePromql(src) {
  const tokens = tokenize(src);
  let i = 0;
  const peek = () => tokens[i];
  const take = (v) => {
    const tok = tokens[i++];
    if (!tok || (v !== undefined && tok.v !== v)) throw new Error(`PromQL: expected ${v ?? 'a token'} at token ${i} of ${src}`);
    return tok;
  };
  const labelList = () => {
    take('(');
    const names = [];
    while (peek().v !== ')') {
      names.push(take().v);
      if (peek().v === ',') take(',');
    }
    take(')');
    return names;
  };
  const primary = () => {
    const tok = take();
    if (tok.t === 'num') return { type: 'num', value: tok.v };
    if (tok.t === 'op' && tok.v === '(') {
      const e = expr();
      take(')');
      return e;
    }
    if (tok.t !== 'id') throw new Error(`PromQL: unexpected ${tok.v} in ${src}`);
    if (AGGREGATIONS.has(tok.v)) {
      let by = null;
      if (peek().v === 'by') {
        take('by');
        by = labelList();
      }
      take('(');
      const arg = expr();
      take(')');
      return { type: 'agg', op: tok.v, by, arg };
    }
    if (FUNCTIONS.has(tok.v)) {
      take('(');
      const args = [expr()];
      while (peek().v === ',') {
        take(',');
        args.push(expr());
      }
      take(')');
      return { type: 'call', fn: tok.v, args };
    }
    const matchers = [];
    if (peek()?.v === '{') {
      take('{');
      while (peek().v !== '}') {
        const label = take().v;
        const op = take().v;
        matchers.push({ label, op, value: take().v });
        if (peek().v === ',') take(',');
      }
      take('}');
    }
    const range = peek()?.t === 'range' ? take().v : null;
    return { type: 'sel', name: tok.v, matchers, range };
  };
  const expr = () => {
    let lhs = primary();
    while (peek()?.v === '/') {
      take('/');
      lhs = { type: 'bin', op: '/', lhs, rhs: primary() };
    }
    return lhs;
  };
  const tree = expr();
  if (i !== tokens.length) throw new Error(`PromQL: trailing tokens in ${src}`);
  return tree;
}

function matches(m, labels) {
  // A Grafana variable left at "All" ($job, $instance, $provider) matches every series.
  if (m.value.includes('$')) return true;
  const v = labels[m.label] ?? '';
  if (m.op === '=') return v === m.value;
  if (m.op === '!=') return v !== m.value;
  const re = new RegExp(`^(?:${m.value})$`);
  return m.op === '=~' ? re.test(v) : !re.test(v);
}

function quantile(q, buckets) {
  buckets.sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.count ?? 0;
  if (!(total > 0)) return Number.NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Number.POSITIVE_INFINITY) return prevLe;
      return prevLe + (b.le - prevLe) * ((rank - prevCount) / (b.count - prevCount || 1));
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

/**
 * Evaluates `tree` at scrape index `k`: an array of `{ labels, value }` (an instant vector) or a number.
 * `windows` gives the seconds of `$__rate_interval` and `$__range`.
 */
export function evaluate(tree, store, k, windows) {
  const ev = (node) => {
    switch (node.type) {
      case 'num':
        return node.value;
      case 'sel': {
        const out = [];
        for (const s of store.series.values()) {
          if (s.name !== node.name || !node.matchers.every((m) => matches(m, s.labels))) continue;
          if (node.range) {
            out.push({ labels: s.labels, series: s, counter: isCounter(s.name) });
            continue;
          }
          const v = s.values[k];
          if (v !== undefined) out.push({ labels: s.labels, value: v });
        }
        return out;
      }
      case 'call': {
        if (node.fn === 'rate' || node.fn === 'increase') {
          const sel = node.args[0];
          const seconds = sel.range === '$__range' ? windows.range : sel.range === '$__rate_interval' ? windows.rateInterval : Number.parseFloat(sel.range);
          const from = store.times[k] - seconds * 1000;
          let j = k;
          while (j > 0 && store.times[j - 1] >= from) j--;
          if (j === k) return [];
          const out = [];
          for (const { labels, series, counter } of ev(sel)) {
            let inc = 0;
            let prev = series.values[j] ?? (counter ? 0 : undefined);
            for (let x = j + 1; x <= k; x++) {
              const v = series.values[x] ?? (counter ? 0 : undefined);
              if (v === undefined || prev === undefined) {
                prev = v;
                continue;
              }
              inc += v >= prev ? v - prev : v;
              prev = v;
            }
            const { le, ...rest } = labels;
            const keep = le === undefined ? rest : { ...rest, le };
            const dt = (store.times[k] - store.times[j]) / 1000;
            out.push({ labels: keep, value: node.fn === 'rate' ? inc / dt : inc });
          }
          return out;
        }
        if (node.fn === 'clamp_min') {
          const floor = ev(node.args[1]);
          const v = ev(node.args[0]);
          return typeof v === 'number' ? Math.max(v, floor) : v.map((s) => ({ labels: s.labels, value: Math.max(s.value, floor) }));
        }
        // histogram_quantile(q, vector with `le`): per label set without `le`.
        const q = ev(node.args[0]);
        const groups = new Map();
        for (const s of ev(node.args[1])) {
          const { le, ...rest } = s.labels;
          const key = JSON.stringify(rest);
          if (!groups.has(key)) groups.set(key, { labels: rest, buckets: [] });
          groups.get(key).buckets.push({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count: s.value });
        }
        return [...groups.values()].map((g) => ({ labels: g.labels, value: quantile(q, g.buckets) })).filter((s) => Number.isFinite(s.value));
      }
      case 'agg': {
        const groups = new Map();
        for (const s of ev(node.arg)) {
          const labels = {};
          for (const l of node.by ?? []) if (s.labels[l] !== undefined) labels[l] = s.labels[l];
          const key = JSON.stringify(labels);
          const g = groups.get(key);
          if (!g) groups.set(key, { labels, value: s.value });
          else g.value = node.op === 'sum' ? g.value + s.value : node.op === 'max' ? Math.max(g.value, s.value) : Math.min(g.value, s.value);
        }
        return [...groups.values()];
      }
      case 'bin': {
        const l = ev(node.lhs);
        const r = ev(node.rhs);
        if (typeof r === 'number') return typeof l === 'number' ? l / r : l.map((s) => ({ labels: s.labels, value: s.value / r }));
        const byKey = new Map(r.map((s) => [JSON.stringify(s.labels), s.value]));
        return l.flatMap((s) => {
          const d = byKey.get(JSON.stringify(s.labels));
          return d === undefined ? [] : [{ labels: s.labels, value: s.value / d }];
        });
      }
      default:
        throw new Error(`PromQL: unsupported node ${node.type}`);
    }
  };
  return ev(tree);
}
