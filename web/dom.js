// Building the page. Every string goes in as a text node or an attribute value, never as
// markup: event data is attacker-controlled, so nothing here touches innerHTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'value' || name === 'checked' || name === 'disabled') {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** An HTML element: `h('a', {href}, 'text', otherNode)`. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, same shape as `h`. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** A console address: `#/` + the segments, each URL-encoded, + an optional query. */
export function route(segments, query) {
  const path = '#/' + segments.map(encodeURIComponent).join('/');
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export function link(segments, text, query) {
  return h('a', { href: route(segments, query) }, text);
}

/** `2024-05-01T10:00:00.123Z` → `2024-05-01 10:00:00.123` (the API speaks UTC). */
export function time(at) {
  return typeof at === 'string' ? at.replace('T', ' ').replace(/Z$/, '') : '';
}

export function pretty(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

/** A table from column headers and rows of cells (strings or nodes). */
export function table(headers, rows, attrs) {
  return h(
    'table',
    attrs,
    h('thead', null, h('tr', null, headers.map((t) => h('th', null, t)))),
    h('tbody', null, rows),
  );
}

export function errorBox(err) {
  const code = err.code ? `${err.status} ${err.code}: ` : '';
  return h('div', { class: 'notice error', role: 'alert' }, code + err.message);
}

export function notice(text, kind = 'info') {
  return h('div', { class: `notice ${kind}` }, text);
}

/** Calls `fn` once input has been quiet for `ms`. */
export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Parses a textarea's JSON, naming the field in the error. */
export function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not valid JSON: ${e.message}`);
  }
}
