// The console's shell: login, the key in the URL fragment, hash routing, the navigation bar
// and the buses list. Each view lives in its own module and renders into a fresh <main>.

import { ApiError, Unauthorized, get, session } from './api.js';
import { errorBox, h, link, notice, route, table } from './dom.js';
import { eventView, searchView, tailView } from './events.js';
import { ruleEditor, rulesView } from './rules.js';
import { deadLettersView } from './deliveries.js';
import { analyticsView } from './analytics.js';
import { functionView, functionsView, keysView, schemaView, schemasView, webhooksView } from './catalog.js';

const BUS = 'switchyard.bus';

// `section` is the nav entry a page belongs to; bus pages keep it when the bus changes.
const ROUTES = [
  { path: 'buses', view: busesView, section: 'buses' },
  { path: 'buses/:bus/events', view: searchView, section: 'events' },
  { path: 'buses/:bus/events/:id', view: eventView, section: 'events' },
  { path: 'buses/:bus/tail', view: tailView, section: 'tail' },
  { path: 'buses/:bus/rules', view: rulesView, section: 'rules' },
  { path: 'buses/:bus/rules/:rule', view: ruleEditor, section: 'rules' },
  { path: 'buses/:bus/new-rule', view: ruleEditor, section: 'rules' },
  { path: 'buses/:bus/dead-letters', view: deadLettersView, section: 'dead-letters' },
  { path: 'buses/:bus/analytics', view: analyticsView, section: 'analytics' },
  { path: 'schemas', view: schemasView, section: 'schemas' },
  { path: 'schemas/:source/:type', view: schemaView, section: 'schemas' },
  { path: 'functions', view: functionsView, section: 'functions' },
  { path: 'functions/:name', view: functionView, section: 'functions' },
  { path: 'webhooks', view: webhooksView, section: 'webhooks' },
  { path: 'keys', view: keysView, section: 'keys' },
];

const NAV = [
  ['buses', 'Buses', false],
  ['events', 'Events', true],
  ['tail', 'Live tail', true],
  ['rules', 'Rules', true],
  ['dead-letters', 'Dead letters', true],
  ['analytics', 'Analytics', true],
  ['schemas', 'Schemas', false],
  ['functions', 'Functions', false],
  ['webhooks', 'Webhooks', false],
  ['keys', 'Keys', false],
];

const app = document.getElementById('app');
let shell = null; // { nav, busSelect, main } once signed in
let current = null; // the context of the page on screen

/** `#key=<key>&/route`: keep the key in the session and take it out of the address bar. */
function takeKeyFromFragment() {
  const hash = location.hash;
  if (!hash.startsWith('#key=')) return;
  const rest = hash.slice('#key='.length);
  const amp = rest.indexOf('&');
  const key = amp < 0 ? rest : rest.slice(0, amp);
  const next = amp < 0 ? '/buses' : rest.slice(amp + 1);
  try {
    session.save(decodeURIComponent(key));
  } catch {
    session.save(key);
  }
  history.replaceState(null, '', `${location.pathname}${location.search}#${next || '/buses'}`);
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const pathPart = q < 0 ? raw : raw.slice(0, q);
  const query = Object.fromEntries(new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)));
  return { segments: pathPart.split('/').filter(Boolean), query };
}

function match(segments) {
  for (const r of ROUTES) {
    const parts = r.path.split('/');
    if (parts.length !== segments.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < parts.length && ok; i++) {
      if (parts[i].startsWith(':')) {
        try {
          params[parts[i].slice(1)] = decodeURIComponent(segments[i]);
        } catch {
          ok = false;
        }
      } else {
        ok = parts[i] === segments[i];
      }
    }
    if (ok) return { ...r, params };
  }
  return null;
}

/** Shows an error where it happened, or the login form when the key was refused. */
function report(err, out) {
  if (err instanceof Unauthorized) {
    showLogin(`The server refused the API key: ${err.message}`);
    return;
  }
  console.error(err);
  out.append(err instanceof ApiError ? errorBox(err) : notice(err.message, 'error'));
}

function context(params, query, main) {
  const disposers = [];
  return {
    params,
    query,
    main,
    onDispose: (fn) => disposers.push(fn),
    dispose: () => disposers.splice(0).forEach((fn) => fn()),
    navigate: (href) => {
      location.hash = href;
    },
    /** Runs an action; its error replaces what `out` shows. */
    async act(fn, out) {
      try {
        return await fn();
      } catch (err) {
        out.replaceChildren();
        report(err, out);
        return undefined;
      }
    },
  };
}

function showLogin(message, kind = 'error') {
  current?.dispose();
  current = null;
  shell = null;
  session.clear();
  const input = h('input', {
    type: 'password',
    name: 'key',
    placeholder: 'sy_admin_…',
    autocomplete: 'off',
    required: true,
    'aria-label': 'API key',
  });
  const form = h(
    'form',
    {
      class: 'login',
      id: 'login',
      onsubmit: (e) => {
        e.preventDefault();
        session.save(input.value.trim());
        render();
      },
    },
    h('h1', null, 'Switchyard'),
    h('p', null, 'Paste an API key. The admin key is in ', h('code', null, '<data-dir>/admin.key'), '.'),
    message ? notice(message, kind) : null,
    input,
    h('button', { type: 'submit' }, 'Sign in'),
  );
  app.replaceChildren(form);
  input.focus();
}

function selectedBus() {
  return sessionStorage.getItem(BUS) || 'default';
}

function buildShell() {
  const busSelect = h('select', { 'aria-label': 'Bus', id: 'bus-select' });
  const nav = h('nav');
  const main = h('main');
  shell = { nav, busSelect, main };
  busSelect.addEventListener('change', () => {
    sessionStorage.setItem(BUS, busSelect.value);
    const page = match(parseHash().segments);
    const section = page?.params.bus !== undefined ? page.section : 'events';
    location.hash = route(['buses', busSelect.value, section]);
  });
  app.replaceChildren(
    h(
      'header',
      null,
      h('a', { class: 'brand', href: '#/buses' }, 'Switchyard'),
      busSelect,
      nav,
      h('button', { class: 'quiet', onclick: () => showLogin('Signed out.', 'info') }, 'Sign out'),
    ),
    main,
  );
}

/** Fills the bus selector; returns the buses. */
async function refreshBuses() {
  const { buses } = await get(['buses']);
  const names = buses.map((b) => b.name);
  if (!names.includes(selectedBus())) names.unshift(selectedBus());
  shell?.busSelect.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
  if (shell) shell.busSelect.value = selectedBus();
  return buses;
}

function drawNav(section) {
  const bus = selectedBus();
  shell.busSelect.value = bus;
  shell.nav.replaceChildren(
    ...NAV.map(([id, label, perBus]) =>
      h(
        'a',
        {
          href: perBus ? route(['buses', bus, id]) : route([id]),
          class: id === section ? 'active' : null,
        },
        label,
      ),
    ),
  );
}

let rendering = 0; // bumped by every render, so a slower earlier one stops

async function render() {
  const generation = ++rendering;
  takeKeyFromFragment();
  current?.dispose();
  current = null;
  if (!session.key()) {
    showLogin();
    return;
  }
  const { segments, query } = parseHash();
  const page = segments.length ? match(segments) : match(['buses']);
  if (page?.params.bus !== undefined) sessionStorage.setItem(BUS, page.params.bus);
  if (!shell) {
    buildShell();
    try {
      await refreshBuses();
    } catch (err) {
      if (err instanceof Unauthorized) {
        report(err, app);
        return;
      }
      shell.busSelect.replaceChildren(h('option', { value: selectedBus() }, selectedBus()));
    }
    if (generation !== rendering) return;
  }
  drawNav(page?.section);
  const main = h('main');
  shell.main.replaceWith(main);
  shell.main = main;
  const ctx = context(page?.params ?? {}, query, main);
  current = ctx;
  if (!page) {
    main.append(notice('There is no such page.', 'error'));
    return;
  }
  await ctx.act(() => page.view(ctx), main);
}

async function busesView(ctx) {
  ctx.main.append(h('h1', null, 'Buses'));
  const buses = await refreshBuses();
  ctx.main.append(
    table(
      ['name', 'description', 'events', 'retention', 'schema validation', 'offsets'],
      buses.map((b) =>
        h(
          'tr',
          null,
          h('td', null, link(['buses', b.name, 'events'], b.name)),
          h('td', null, b.description ?? ''),
          h('td', { class: 'num' }, b.events),
          h('td', { class: 'num' }, `${b.retention_hours} h`),
          h('td', null, b.schema_validation),
          h('td', { class: 'num' }, b.first_offset === null ? '–' : `${b.first_offset}…${b.last_offset}`),
        ),
      ),
      { class: 'list', id: 'buses' },
    ),
  );
}

addEventListener('hashchange', render);
addEventListener('unhandledrejection', (e) => {
  if (e.reason instanceof Unauthorized) showLogin(`The server refused the API key: ${e.reason.message}`);
});
render();
