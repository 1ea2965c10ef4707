// Analytics: a group-by over a time window, drawn as inline SVG bars, and with an interval
// a histogram of the window. The form lives in the address, so a chart is a link.

import { post } from './api.js';
import { h, notice, route, s, time } from './dom.js';

const WINDOWS = { '15m': 15, '1h': 60, '6h': 360, '24h': 1440, '7d': 10080 };
// The bucket width "auto" picks: about 15 to 170 bars.
const AUTO = { '15m': '1m', '1h': '5m', '6h': '30m', '24h': '1h', '7d': '1d' };
const INTERVALS = ['auto', 'none', '30s', '1m', '5m', '30m', '1h', '1d'];

function select(name, options, value) {
  return h('select', { name }, options.map((o) => h('option', { value: o, selected: o === value ? true : null }, o)));
}

function groupLabel(group) {
  const values = Object.values(group ?? {});
  return values.length ? values.map((v) => (v === null ? '(none)' : String(v))).join(' · ') : '(all)';
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/** Horizontal bars, one per group. */
function bars(items, unit) {
  const max = Math.max(...items.map((i) => i.value ?? 0), 0) || 1;
  const row = 24;
  const height = items.length * row + 4;
  return s(
    'svg',
    { class: 'chart bars', viewBox: `0 0 720 ${height}`, role: 'img', 'aria-label': `${unit} per group` },
    items.map((item, i) => {
      const y = i * row + 2;
      const w = item.value === null ? 0 : Math.max(1, (Math.max(item.value, 0) / max) * 400);
      const shown = item.value === null ? '–' : String(round(item.value));
      return s(
        'g',
        null,
        s('title', null, `${item.label}: ${shown} ${unit}`),
        s('text', { x: 0, y: y + 16, class: 'label' }, clip(item.label, 34)),
        w ? s('rect', { x: 240, y: y + 3, width: w, height: row - 8, rx: 2 }) : null,
        s('text', { x: 248 + w, y: y + 16, class: 'value' }, shown),
      );
    }),
  );
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `5m` → 300000. */
function intervalMs(text) {
  const m = /^(\d+)([smhd])$/.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
}

/**
 * Vertical bars over time: the count of every bucket of the window, summed over the groups.
 * The API leaves out empty buckets; they are drawn as gaps. Buckets are aligned to the epoch,
 * as the server aligns them.
 */
function histogram(series, from, to, interval) {
  const width = intervalMs(interval);
  const totals = new Map();
  for (const serie of series) {
    for (const p of serie.points) {
      const at = Date.parse(p.at);
      totals.set(at, (totals.get(at) ?? 0) + p.count);
    }
  }
  const buckets = [];
  for (let t = Math.floor(from.getTime() / width) * width; t < to.getTime() && buckets.length < 10_000; t += width) {
    buckets.push([t, totals.get(t) ?? 0]);
  }
  const max = Math.max(...buckets.map(([, c]) => c), 0);
  if (!buckets.length || max === 0) return notice('No events in this window.');
  const w = 720;
  const top = 18;
  const plot = 150;
  const step = w / buckets.length;
  const stamp = (t) => time(new Date(t).toISOString());
  return s(
    'svg',
    { class: 'chart histogram', viewBox: `0 0 ${w} ${top + plot + 24}`, role: 'img', 'aria-label': 'events over time' },
    s('text', { x: w, y: 12, class: 'label end' }, `max ${max} per ${interval}`),
    buckets.map(([t, count], n) => {
      const hgt = (count / max) * plot;
      return s(
        'rect',
        { x: n * step + 0.5, y: top + plot - hgt, width: Math.max(1, step - 1), height: hgt },
        s('title', null, `${stamp(t)}: ${count}`),
      );
    }),
    s('line', { x1: 0, y1: top + plot + 0.5, x2: w, y2: top + plot + 0.5, class: 'axis' }),
    s('text', { x: 0, y: top + plot + 18, class: 'label' }, stamp(buckets[0][0])),
    s('text', { x: w, y: top + plot + 18, class: 'label end' }, stamp(buckets[buckets.length - 1][0])),
  );
}

function round(x) {
  return Number.isInteger(x) ? x : Math.round(x * 100) / 100;
}

export async function analyticsView(ctx) {
  const { bus } = ctx.params;
  const query = {
    q: ctx.query.q ?? '',
    window: WINDOWS[ctx.query.window] ? ctx.query.window : '1h',
    group_by: ctx.query.group_by ?? 'type',
    interval: INTERVALS.includes(ctx.query.interval) ? ctx.query.interval : 'auto',
    metric: ctx.query.metric || 'count',
  };
  const fields = {
    q: h('input', { name: 'q', value: query.q, placeholder: 'query (empty: every event)', 'aria-label': 'Query' }),
    window: select('window', Object.keys(WINDOWS), query.window),
    group_by: h('input', { name: 'group_by', value: query.group_by, placeholder: 'type, data.country', 'aria-label': 'Group by' }),
    interval: select('interval', INTERVALS, query.interval),
    metric: h('input', { name: 'metric', value: query.metric, placeholder: 'count, avg:data.total, p95:data.total', 'aria-label': 'Metric' }),
  };
  const out = h('div');
  ctx.main.append(
    h('h1', null, 'Analytics of ', h('em', null, bus)),
    h(
      'form',
      {
        class: 'bar wrap',
        onsubmit: (e) => {
          e.preventDefault();
          const next = Object.fromEntries(Object.entries(fields).map(([k, el]) => [k, el.value.trim()]));
          ctx.navigate(route(['buses', bus, 'analytics'], next));
        },
      },
      h('label', null, 'query ', fields.q),
      h('label', null, 'last ', fields.window),
      h('label', null, 'group by ', fields.group_by),
      h('label', null, 'interval ', fields.interval),
      h('label', null, 'metric ', fields.metric),
      h('button', { type: 'submit' }, 'Run'),
    ),
    out,
  );

  const to = new Date(Date.now() + 60_000);
  const from = new Date(to.getTime() - WINDOWS[query.window] * 60_000 - 60_000);
  const request = {
    q: query.q,
    from: from.toISOString(),
    to: to.toISOString(),
    group_by: query.group_by.split(',').map((f) => f.trim()).filter(Boolean),
    metric: query.metric,
    limit: 20,
  };
  if (query.interval !== 'none') {
    request.interval = query.interval === 'auto' ? AUTO[query.window] : query.interval;
  }
  await ctx.act(async () => {
    const answer = await post(['buses', bus, 'analytics'], request);
    const metric = query.metric === 'count' ? 'events' : query.metric;
    if (answer.series) {
      const totals = answer.series.map((serie) => ({
        label: groupLabel(serie.group),
        value: serie.points.reduce((n, p) => n + p.count, 0),
      }));
      out.replaceChildren(
        h('h2', null, `Events per ${request.interval}`),
        histogram(answer.series, from, to, request.interval),
        h('h2', null, 'Events per group'),
        totals.length ? bars(totals, 'events') : notice('No events in this window.'),
      );
    } else {
      // A group with no number in the metric's field has no `value`: no bar, a dash.
      const items = answer.rows.map((r) => ({ label: groupLabel(r.group), value: query.metric === 'count' ? r.count : r.value ?? null }));
      out.replaceChildren(h('h2', null, `${metric} per group`), items.length ? bars(items, metric) : notice('No events in this window.'));
    }
  }, out);
}
