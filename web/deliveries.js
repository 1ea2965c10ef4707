// Dead letters of a bus, and redriving them (the selected ones, or all).

import { get, post } from './api.js';
import { h, link, notice, table, time } from './dom.js';
import { eventRoute } from './events.js';

export async function deadLettersView(ctx) {
  const { bus } = ctx.params;
  const out = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  const picked = new Set();
  const redriveSelected = h('button', { disabled: true }, 'Redrive selected');
  const redriveAll = h('button', { class: 'quiet' }, 'Redrive all');

  const redrive = (body) =>
    ctx.act(async () => {
      const r = await post(['buses', bus, 'dead-letters', 'redrive'], body);
      const parts = [`Redriven: ${r.redriven}${r.no_target_count === undefined ? '' : ' (in the background)'}.`];
      if (r.not_found.length) parts.push(`Not found: ${r.not_found.join(', ')}.`);
      if (r.no_target.length) parts.push(`Rule or target gone: ${r.no_target.join(', ')}.`);
      if (r.no_target_count) parts.push(`Rule or target gone for ${r.no_target_count}; they stay.`);
      parts.push('Each leaves the list once delivered, or comes back with its new error.');
      out.replaceChildren(notice(parts.join(' '), r.no_target.length || r.no_target_count ? 'warn' : 'ok'));
      picked.clear();
      await load();
    }, out);
  redriveSelected.addEventListener('click', () => redrive({ ids: [...picked] }));
  redriveAll.addEventListener('click', () => {
    if (confirm(`Redrive every dead letter of ${bus}?`)) redrive({ all: true });
  });

  const load = () =>
    ctx.act(async () => {
      const page = await get(['buses', bus, 'dead-letters'], { limit: 50, cursor: ctx.query.cursor });
      redriveSelected.disabled = true;
      const rows = page.dead_letters.map((d) => {
        const box = h('input', {
          type: 'checkbox',
          'aria-label': `select dead letter ${d.id}`,
          onchange: (e) => {
            if (e.target.checked) picked.add(d.id);
            else picked.delete(d.id);
            redriveSelected.disabled = picked.size === 0;
          },
        });
        const e = d.event ?? {};
        return h(
          'tr',
          null,
          h('td', null, box),
          h('td', { class: 'num' }, d.id),
          h('td', { class: 'time' }, time(d.at)),
          h('td', null, d.rule),
          h('td', null, d.target),
          h('td', { class: 'num' }, d.attempts),
          h('td', { class: 'error-text' }, d.last_error),
          h('td', null, h('a', { href: eventRoute(bus, e) }, String(e.id ?? '')), h('div', { class: 'hint' }, e.type ?? '')),
        );
      });
      list.replaceChildren(
        rows.length
          ? table(['', 'id', 'at (UTC)', 'rule', 'target', 'attempts', 'last error', 'event'], rows, { class: 'list' })
          : notice('No dead letters on this bus.'),
        h('div', { class: 'pager' }, page.next_cursor ? link(['buses', bus, 'dead-letters'], 'older →', { cursor: page.next_cursor }) : null),
      );
    }, list);

  ctx.main.append(
    h('h1', null, 'Dead letters of ', h('em', null, bus)),
    h('div', { class: 'bar' }, redriveSelected, redriveAll, h('button', { class: 'quiet', onclick: () => load() }, 'Refresh')),
    out,
    list,
  );
  await load();
}
