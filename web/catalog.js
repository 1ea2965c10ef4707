// Schemas (discovered and declared, with their versions), WebAssembly functions (with an
// invoke box), inbound webhooks (with the URL to give the provider) and API keys.

import { del, get, post } from './api.js';
import { h, link, notice, parseJson, pretty, table, time } from './dom.js';

export async function schemasView(ctx) {
  ctx.main.append(h('h1', null, 'Schemas'));
  const { schemas } = await get(['schemas']);
  ctx.main.append(
    schemas.length
      ? table(
          ['source', 'type', 'latest version', 'kind', 'events', 'first seen', 'last seen'],
          schemas.map((sc) =>
            h(
              'tr',
              null,
              h('td', null, link(['schemas', sc.source, sc.type], sc.source)),
              h('td', null, link(['schemas', sc.source, sc.type], sc.type)),
              h('td', { class: 'num' }, sc.latest_version),
              h('td', null, sc.explicit ? 'declared' : 'discovered'),
              h('td', { class: 'num' }, sc.events),
              h('td', { class: 'time' }, time(sc.first_seen)),
              h('td', { class: 'time' }, time(sc.last_seen)),
            ),
          ),
          { class: 'list' },
        )
      : notice('No schemas yet: they are discovered from published events.'),
  );
}

export async function schemaView(ctx) {
  const { source, type } = ctx.params;
  ctx.main.append(
    h('p', { class: 'crumbs' }, link(['schemas'], '← schemas')),
    h('h1', null, h('code', null, type), ' from ', h('code', null, source)),
  );
  const schema = await get(['schemas', source, type]);
  const versions = [...schema.versions].sort((a, b) => b.version - a.version);
  ctx.main.append(
    ...versions.map((v) =>
      h(
        'section',
        { class: 'version' },
        h('h2', null, `Version ${v.version} `, h('span', { class: 'hint' }, `${v.explicit ? 'declared' : 'discovered'} · ${time(v.created_at)}`)),
        pretty(v.schema),
      ),
    ),
  );
}

export async function functionsView(ctx) {
  ctx.main.append(h('h1', null, 'Functions'));
  const { functions } = await get(['functions']);
  ctx.main.append(
    functions.length
      ? table(
          ['name', 'size', 'timeout', 'memory', 'fuel', 'updated (UTC)'],
          functions.map((f) =>
            h(
              'tr',
              null,
              h('td', null, link(['functions', f.name], f.name)),
              h('td', { class: 'num' }, `${f.size_bytes} B`),
              h('td', { class: 'num' }, `${f.timeout_ms} ms`),
              h('td', { class: 'num' }, `${f.memory_mb} MiB`),
              h('td', { class: 'num' }, f.fuel),
              h('td', { class: 'time' }, time(f.updated_at)),
            ),
          ),
          { class: 'list' },
        )
      : notice('No functions deployed: PUT a WebAssembly module to /v1/functions/{name}.'),
  );
}

export async function functionView(ctx) {
  const { name } = ctx.params;
  const f = await get(['functions', name]);
  const input = h('textarea', {
    name: 'event',
    rows: 12,
    spellcheck: 'false',
    value: JSON.stringify({ specversion: '1.0', id: 'console-1', source: '/console', type: 'console.invoke', data: {} }, null, 2),
  });
  const out = h('div', { 'aria-live': 'polite' });
  const invoke = async (e) => {
    e.preventDefault();
    out.replaceChildren(notice('running…'));
    let event;
    try {
      event = parseJson(input.value, 'The event');
    } catch (err) {
      out.replaceChildren(notice(err.message, 'error'));
      return;
    }
    await ctx.act(async () => {
      const r = await post(['functions', name, 'invoke'], event);
      const facts = `${r.duration_ms} ms${r.fuel_used !== undefined ? ` · ${r.fuel_used} fuel` : ''}`;
      out.replaceChildren(
        r.error
          ? notice(`Failed (${r.error.code}) after ${facts}: ${r.error.message}`, 'error')
          : h('div', null, notice(`Succeeded in ${facts}`, 'ok'), pretty(r.output)),
      );
    }, out);
  };
  ctx.main.append(
    h('p', { class: 'crumbs' }, link(['functions'], '← functions')),
    h('h1', null, 'Function ', h('code', null, name)),
    h(
      'dl',
      { class: 'facts' },
      h('dt', null, 'sha256'),
      h('dd', null, h('code', null, f.sha256)),
      h('dt', null, 'size'),
      h('dd', null, `${f.size_bytes} B`),
      h('dt', null, 'limits'),
      h('dd', null, `${f.timeout_ms} ms · ${f.memory_mb} MiB · ${f.fuel} fuel`),
      h('dt', null, 'updated'),
      h('dd', null, time(f.updated_at)),
    ),
    h('form', { class: 'editor', onsubmit: invoke }, h('label', null, 'Event (stdin of the function)', input), h('div', { class: 'bar' }, h('button', { type: 'submit' }, 'Invoke')), out),
  );
}

export async function webhooksView(ctx) {
  ctx.main.append(h('h1', null, 'Webhooks'));
  const { webhooks } = await get(['webhooks']);
  ctx.main.append(
    webhooks.length
      ? table(
          ['name', 'bus', 'source', 'type from', 'signature', 'URL for the provider'],
          webhooks.map((w) =>
            h(
              'tr',
              null,
              h('td', null, w.name),
              h('td', null, link(['buses', w.bus, 'events'], w.bus)),
              h('td', null, w.source),
              h('td', null, w.type_from ?? `switchyard.webhook.${w.name}`),
              h('td', null, w.verify ? w.verify.scheme : 'none: anyone with the URL can publish'),
              h('td', null, h('code', { class: 'webhook-url' }, `${location.origin}${w.path}`)),
            ),
          ),
          { class: 'list' },
        )
      : notice('No webhooks: PUT one at /v1/webhooks/{name} with its bus, source and signature scheme.'),
  );
}

export async function keysView(ctx) {
  const out = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  const name = h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9._-]{1,64}', placeholder: 'shop-producer' });
  const role = h(
    'select',
    { name: 'role' },
    h('option', { value: 'publisher' }, 'publisher: publish only'),
    h('option', { value: 'reader' }, 'reader: reads, searches, analytics'),
    h('option', { value: 'admin' }, 'admin: everything'),
  );
  const load = () =>
    ctx.act(async () => {
      const { keys } = await get(['keys']);
      list.replaceChildren(
        keys.length
          ? table(
              ['name', 'role', 'starts with', 'created (UTC)', ''],
              keys.map((k) =>
                h(
                  'tr',
                  null,
                  h('td', null, k.name),
                  h('td', null, k.role),
                  h('td', null, h('code', null, `${k.prefix}…`)),
                  h('td', { class: 'time' }, time(k.created_at)),
                  h(
                    'td',
                    null,
                    h('button', {
                      class: 'quiet',
                      onclick: () => {
                        if (!confirm(`Revoke the key ${k.name}? Requests with it are refused at once.`)) return;
                        ctx.act(async () => {
                          await del(['keys', k.name]);
                          out.replaceChildren(notice(`Revoked ${k.name}.`, 'ok'));
                          await load();
                        }, out);
                      },
                    }, 'Revoke'),
                  ),
                ),
              ),
              { class: 'list' },
            )
          : notice('No keys besides the admin key.'),
      );
    }, list);
  const create = (e) => {
    e.preventDefault();
    ctx.act(async () => {
      const k = await post(['keys'], { name: name.value, role: role.value });
      out.replaceChildren(
        notice(`Created ${k.name} (${k.role}). Copy the key now: it is not shown again.`, 'ok'),
        h('pre', { class: 'new-key' }, k.key),
      );
      name.value = '';
      await load();
    }, out);
  };
  ctx.main.append(
    h('h1', null, 'API keys'),
    h('form', { class: 'bar', onsubmit: create }, h('label', null, 'Name ', name), h('label', null, 'Role ', role), h('button', { type: 'submit' }, 'Create key')),
    out,
    list,
  );
  await load();
}
