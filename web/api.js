// Talking to /v1: the key lives in sessionStorage and goes on every call as a bearer token.

const KEY = 'switchyard.key';

export const session = {
  key: () => sessionStorage.getItem(KEY),
  save: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

/** The server refused the key (401): the console goes back to its login form. */
export class Unauthorized extends Error {}

/** Any other non-2xx answer, with the API's `{"error": {"code", "message", "details"}}`. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Calls the API; `body` (any JSON value) is sent as JSON. Resolves to the decoded answer. */
export async function api(method, path, body) {
  const headers = { authorization: `Bearer ${session.key() ?? ''}` };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  const error = data && typeof data === 'object' ? data.error : undefined;
  if (resp.status === 401) {
    throw new Unauthorized(error?.message ?? 'the API key was refused');
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, error?.code ?? 'http_error', error?.message ?? String(text), error?.details);
  }
  return data;
}

/** `/v1/` + URL-encoded segments + a query of the non-empty params. */
export function path(segments, params) {
  const p = '/v1/' + segments.map(encodeURIComponent).join('/');
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v !== undefined && v !== null && v !== '') query.set(k, String(v));
  }
  const qs = query.toString();
  return qs ? `${p}?${qs}` : p;
}

export const get = (segments, params) => api('GET', path(segments, params));
export const post = (segments, body) => api('POST', path(segments), body);
export const put = (segments, body) => api('PUT', path(segments), body);
export const del = (segments) => api('DELETE', path(segments));
