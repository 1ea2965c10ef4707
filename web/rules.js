// Rules: the list with their targets, and an editor whose pattern is tested live against a
// sample event as you type.

import { del, get, post, put } from './api.js';
import { debounce, h, link, notice, parseJson, route, table } from './dom.js';

const NEW_RULE = {
  description: '',
  enabled: true,
  pattern: { type: ['com.example.something'] },
  targets: [],
};

const SAMPLE_EVENT = {
  specversion: '1.0',
  id: 'sample-1',
  source: '/console',
  type: 'com.example.something',
  data: {},
};

/** Where a target sends events, in a few words. */
function destination(t) {
  switch (t.kind) {
    case 'http':
      return t.http?.url ?? '';
    case 'function':
      return t.function ?? '';
    case 'bus':
      return `bus ${t.bus ?? ''}`;
    case 'nats':
      return `${t.nats?.url ?? ''} ${t.nats?.subject ?? ''}`;
    case 'amqp':
      return `${t.amqp?.exchange ?? ''} ${t.amqp?.routing_key ?? ''}`;
    case 'redis':
      return `${t.redis?.url ?? ''} ${t.redis?.stream ?? ''}`;
    case 'mqtt':
      return `${t.mqtt?.url ?? ''} ${t.mqtt?.topic ?? ''}`;
    default:
      return '';
  }
}

export async function rulesView(ctx) {
  const { bus } = ctx.params;
  const out = h('div');
  ctx.main.append(
    h('h1', null, 'Rules on ', h('em', null, bus), ' ', h('a', { class: 'button', href: route(['buses', bus, 'new-rule']) }, 'New rule')),
    out,
  );
  const load = () =>
    ctx.act(async () => {
      const { rules } = await get(['buses', bus, 'rules']);
      const switcher = (r) =>
        h(
          'button',
          {
            class: 'quiet',
            onclick: () =>
              ctx.act(async () => {
                await post(['buses', bus, 'rules', r.name, r.enabled ? 'disable' : 'enable']);
                await load();
              }, out),
          },
          r.enabled ? 'Disable' : 'Enable',
        );
      out.replaceChildren(
        rules.length
          ? table(
              ['name', 'state', 'description', 'pattern', 'targets', ''],
              rules.map((r) =>
                h(
                  'tr',
                  null,
                  h('td', null, link(['buses', bus, 'rules', r.name], r.name)),
                  h('td', null, h('span', { class: `chip ${r.enabled ? 'ok' : 'off'}` }, r.enabled ? 'enabled' : 'disabled')),
                  h('td', null, r.description ?? ''),
                  h('td', null, h('code', { class: 'clip' }, JSON.stringify(r.pattern))),
                  h(
                    'td',
                    null,
                    r.targets.length
                      ? h('ul', { class: 'plain' }, r.targets.map((t) => h('li', null, h('strong', null, t.id), ` ${t.kind} `, h('span', { class: 'hint' }, destination(t)))))
                      : h('span', { class: 'hint' }, 'records matches only'),
                  ),
                  h('td', null, switcher(r)),
                ),
              ),
              { class: 'list' },
            )
          : notice('No rules on this bus yet.'),
      );
    }, out);
  await load();
}

/** The editable part of a rule: what `PUT` takes. */
function body(rule) {
  const { description, enabled, pattern, targets } = rule;
  return description === null ? { enabled, pattern, targets } : { description, enabled, pattern, targets };
}

export async function ruleEditor(ctx) {
  const { bus } = ctx.params;
  const existing = ctx.params.rule;
  const rule = existing ? await get(['buses', bus, 'rules', existing]) : NEW_RULE;
  const newest = await get(['buses', bus, 'events'], { limit: 1 });
  const sample = newest.events[0]?.event ?? SAMPLE_EVENT;

  const name = h('input', { name: 'name', value: existing ?? '', readonly: existing ? true : null, placeholder: 'big-orders', required: true, pattern: '[A-Za-z0-9._\\-]{1,64}' });
  const ruleText = h('textarea', { name: 'rule', rows: 18, spellcheck: 'false', value: JSON.stringify(existing ? body(rule) : rule, null, 2) });
  const eventText = h('textarea', { name: 'event', rows: 18, spellcheck: 'false', value: JSON.stringify(sample, null, 2) });
  const verdict = h('div', { class: 'verdict', id: 'verdict', 'aria-live': 'polite' });
  const out = h('div', { 'aria-live': 'polite' });

  let asked = 0;
  const test = async () => {
    const mine = ++asked;
    let pattern;
    let event;
    try {
      pattern = parseJson(ruleText.value, 'The rule').pattern;
      event = parseJson(eventText.value, 'The sample event');
    } catch (e) {
      verdict.replaceChildren(notice(e.message, 'warn'));
      return;
    }
    if (pattern === undefined) {
      verdict.replaceChildren(notice('The rule has no "pattern".', 'warn'));
      return;
    }
    const answer = await ctx.act(() => post(['patterns', 'test'], { pattern, event }), verdict);
    if (mine !== asked || answer === undefined) return;
    verdict.replaceChildren(
      answer.matches ? notice('✓ the pattern matches the sample event', 'ok') : notice('✗ the pattern does not match the sample event', 'muted'),
    );
  };
  const retest = debounce(test, 250);
  ruleText.addEventListener('input', retest);
  eventText.addEventListener('input', retest);

  const save = async (e) => {
    e.preventDefault();
    out.replaceChildren();
    let payload;
    try {
      payload = parseJson(ruleText.value, 'The rule');
    } catch (err) {
      out.replaceChildren(notice(err.message, 'error'));
      return;
    }
    const ruleName = name.value.trim();
    await ctx.act(async () => {
      await put(['buses', bus, 'rules', ruleName], payload);
      if (!existing) {
        ctx.navigate(route(['buses', bus, 'rules', ruleName]));
        return;
      }
      out.replaceChildren(notice(`Saved at ${new Date().toLocaleTimeString()}; it applies to events published from now on.`, 'ok'));
    }, out);
  };

  const switcher = h('button', {
    type: 'button',
    class: 'quiet',
    onclick: () =>
      ctx.act(async () => {
        const now = await get(['buses', bus, 'rules', existing]);
        await post(['buses', bus, 'rules', existing, now.enabled ? 'disable' : 'enable']);
        const after = await get(['buses', bus, 'rules', existing]);
        ruleText.value = JSON.stringify(body(after), null, 2);
        switcher.textContent = after.enabled ? 'Disable' : 'Enable';
        out.replaceChildren(notice(after.enabled ? 'Enabled.' : 'Disabled.', 'ok'));
      }, out),
  }, rule.enabled === false ? 'Enable' : 'Disable');
  const remove = h('button', {
    type: 'button',
    class: 'danger',
    onclick: () => {
      if (!confirm(`Delete rule ${existing}?`)) return;
      ctx.act(async () => {
        await del(['buses', bus, 'rules', existing]);
        ctx.navigate(route(['buses', bus, 'rules']));
      }, out);
    },
  }, 'Delete');

  ctx.main.append(
    h('p', { class: 'crumbs' }, link(['buses', bus, 'rules'], `← rules on ${bus}`)),
    h('h1', null, existing ? 'Rule ' : 'New rule', existing ? h('code', null, existing) : null),
    h(
      'form',
      { class: 'editor', onsubmit: save },
      h('label', null, 'Name ', name),
      h(
        'div',
        { class: 'columns' },
        h('label', null, 'Rule (description, enabled, pattern, targets)', ruleText),
        h('label', null, 'Sample event (the newest on the bus, or edit your own)', eventText),
      ),
      verdict,
      h('div', { class: 'bar' }, h('button', { type: 'submit' }, 'Save'), existing ? [switcher, remove] : null),
      out,
    ),
  );
  await test();
}
