// Events: search with paging, one event with its trace timeline, and the live tail.

import { get } from './api.js';
import { h, link, notice, pretty, route, table, time } from './dom.js';

const PAGE = 50;

/** Where one record's detail lives (the source is part of an event's identity). */
export function eventRoute(bus, event) {
  return route(['buses', bus, 'events', String(event.id)], { source: event.source });
}

function eventRow(ctx, bus, record) {
  const e = record.event ?? {};
  const href = eventRoute(bus, e);
  return h(
    'tr',
    { class: 'clickable', 'data-offset': record.offset, onclick: () => ctx.navigate(href) },
    h('td', { class: 'time' }, time(record.received_at)),
    h('td', null, e.type ?? ''),
    h('td', null, e.source ?? ''),
    h('td', null, h('a', { href, class: 'event-id' }, String(e.id ?? ''))),
    h('td', null, (record.matched_rules ?? []).map((r) => h('span', { class: 'chip' }, r))),
  );
}

function eventTable(rows) {
  return table(['received (UTC)', 'type', 'source', 'id', 'matched rules'], rows, { class: 'list events' });
}

export async function searchView(ctx) {
  const { bus } = ctx.params;
  const q = ctx.query.q ?? '';
  const input = h('input', {
    type: 'search',
    name: 'q',
    value: q,
    placeholder: 'type = com.shop.order.created AND data.total > 100',
    'aria-label': 'Query',
  });
  const results = h('div', { class: 'results' });
  ctx.main.append(
    h('h1', null, 'Events on ', h('em', null, bus)),
    h(
      'form',
      {
        class: 'bar',
        onsubmit: (e) => {
          e.preventDefault();
          ctx.navigate(route(['buses', bus, 'events'], { q: input.value.trim() }));
        },
      },
      input,
      h('button', { type: 'submit' }, 'Search'),
    ),
    h(
      'p',
      { class: 'hint' },
      'Fields are attributes or paths into data (data.customer.tier); =, !=, <, >, exists, IN, AND, OR, NOT; bare words search the data text. Newest first.',
    ),
    results,
  );
  await ctx.act(async () => {
    const page = await get(['buses', bus, 'events'], { q, limit: PAGE, cursor: ctx.query.cursor });
    const pager = h('div', { class: 'pager' });
    if (ctx.query.cursor) pager.append(link(['buses', bus, 'events'], '⇤ newest', { q }));
    if (page.next_cursor) {
      pager.append(link(['buses', bus, 'events'], 'older →', { q, cursor: page.next_cursor }));
    }
    results.replaceChildren(
      page.events.length
        ? eventTable(page.events.map((r) => eventRow(ctx, bus, r)))
        : notice(q ? 'No event matches this query.' : 'This bus has no events yet.'),
      pager,
    );
  }, results);
}

/** A step that went wrong is marked `fail`, one that will be tried again `warn`. */
function outcome(step) {
  switch (step.stage) {
    case 'dead_lettered':
    case 'dropped':
    case 'schema_violation':
      return 'fail';
    case 'attempt':
      return step.error || (step.status !== undefined && step.status >= 300) ? 'fail' : 'ok';
    case 'retry_scheduled':
      return 'warn';
    case 'delivered':
      return 'ok';
    default:
      return 'info';
  }
}

const FIELDS = [
  ['rule', 'rule'],
  ['target', 'target'],
  ['attempt', 'attempt'],
  ['status', 'status'],
  ['latency_ms', 'latency', (v) => `${v} ms`],
  ['retry_in_ms', 'retry in', (v) => `${v} ms`],
  ['offset', 'offset'],
  ['replay', 'replay'],
];

function stepItem(step, start) {
  const cls = outcome(step);
  const delta = Date.parse(step.at) - start;
  return h(
    'li',
    { class: `step ${cls}`, 'data-stage': step.stage },
    h(
      'div',
      { class: 'step-head' },
      h('span', { class: 'stage' }, step.stage),
      h('time', { datetime: step.at }, time(step.at)),
      Number.isFinite(delta) ? h('span', { class: 'delta' }, `+${delta} ms`) : null,
    ),
    h(
      'dl',
      null,
      FIELDS.filter(([key]) => step[key] !== undefined && step[key] !== null).map(([key, label, fmt]) => [
        h('dt', null, label),
        h('dd', null, fmt ? fmt(step[key]) : String(step[key])),
      ]),
    ),
    step.error ? h('div', { class: 'step-error' }, step.error) : null,
    step.output ? h('pre', { class: 'step-output' }, step.output) : null,
  );
}

/** Where each (rule, target) ended up: the answer to "where did my event go?". */
function summary(timeline) {
  const last = new Map();
  for (const step of timeline) {
    if (!step.target) continue;
    const key = `${step.rule ?? ''}\u0000${step.target}`;
    const seen = last.get(key) ?? { rule: step.rule, target: step.target, attempts: 0 };
    if (step.stage === 'attempt') seen.attempts = Math.max(seen.attempts, step.attempt ?? seen.attempts + 1);
    seen.step = step;
    last.set(key, seen);
  }
  const says = {
    delivered: 'delivered',
    dead_lettered: 'dead-lettered',
    dropped: 'dropped',
    retry_scheduled: 'retry scheduled',
    attempt: 'in flight',
    transformed: 'in flight',
  };
  return [...last.values()].map(({ rule, target, attempts, step }) =>
    h(
      'li',
      { class: outcome(step) },
      h('strong', null, `${rule ?? '?'} → ${target}`),
      `: ${says[step.stage] ?? step.stage} after ${attempts} attempt${attempts === 1 ? '' : 's'}`,
    ),
  );
}

export async function eventView(ctx) {
  const { bus, id } = ctx.params;
  const source = ctx.query.source;
  const body = h('div');
  const refresh = h('button', { class: 'quiet', onclick: () => load() }, 'Refresh');
  ctx.main.append(
    h('p', { class: 'crumbs' }, link(['buses', bus, 'events'], `← events on ${bus}`)),
    h('h1', null, 'Event ', h('code', null, id), ' ', refresh),
    body,
  );
  const load = () =>
    ctx.act(async () => {
      const trace = await get(['buses', bus, 'events', id, 'trace'], { source });
      const record = trace.event;
      const e = record.event ?? {};
      const start = Date.parse(record.received_at);
      const outcomes = summary(trace.timeline);
      body.replaceChildren(
        h(
          'dl',
          { class: 'facts' },
          h('dt', null, 'source'),
          h('dd', null, e.source ?? ''),
          h('dt', null, 'type'),
          h('dd', null, e.type ?? ''),
          h('dt', null, 'received'),
          h('dd', null, time(record.received_at)),
          h('dt', null, 'offset'),
          h('dd', null, String(record.offset)),
          h('dt', null, 'matched rules'),
          h('dd', null, record.matched_rules.length ? record.matched_rules.join(', ') : 'none'),
        ),
        h('div', { class: 'columns' },
          h(
            'section',
            { class: 'trace' },
            h('h2', null, 'Trace'),
            outcomes.length ? h('ul', { class: 'outcomes' }, outcomes) : null,
            h('ol', { class: 'timeline', id: 'timeline' }, trace.timeline.map((st) => stepItem(st, start))),
          ),
          h('section', null, h('h2', null, 'Event'), pretty(e)),
        ),
      );
    }, body);
  await load();
}

export async function tailView(ctx) {
  const { bus } = ctx.params;
  let newest = -1;
  let paused = false;
  let timer;
  const status = h('span', { class: 'hint' }, 'connecting…');
  const rows = h('tbody');
  const errors = h('div');
  const toggle = h('button', {
    class: 'quiet',
    onclick: () => {
      paused = !paused;
      toggle.textContent = paused ? 'Resume' : 'Pause';
      if (!paused) poll();
    },
  }, 'Pause');
  const grid = eventTable([]);
  grid.querySelector('tbody').replaceWith(rows);
  ctx.main.append(h('h1', null, 'Live tail of ', h('em', null, bus)), h('div', { class: 'bar' }, toggle, status), errors, grid);

  let alive = true;
  ctx.onDispose(() => {
    alive = false;
    clearTimeout(timer);
  });
  async function poll() {
    clearTimeout(timer);
    if (!alive || paused) return;
    const page = await ctx.act(() => get(['buses', bus, 'events'], { limit: PAGE }), errors);
    if (!alive) return;
    if (page) {
      errors.replaceChildren();
      const fresh = page.events.filter((r) => r.offset > newest);
      if (fresh.length) {
        newest = fresh[0].offset;
        const first = rows.childElementCount === 0;
        rows.prepend(...fresh.map((r) => {
          const tr = eventRow(ctx, bus, r);
          if (!first) tr.classList.add('fresh');
          return tr;
        }));
        while (rows.childElementCount > 500) rows.lastElementChild.remove();
      }
      status.textContent = `polling every second · ${rows.childElementCount} shown · last check ${new Date().toLocaleTimeString()}`;
    }
    timer = setTimeout(poll, 1000);
  }
  await poll();
}
