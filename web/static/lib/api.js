// The API client: the token lives in sessionStorage only (gone when the
// browser session ends) and goes in the Authorization header, never in a
// URL.

const KEY = 'kapkan.token';

export const auth = {
  get token() { return sessionStorage.getItem(KEY) || ''; },
  set(token) { token ? sessionStorage.setItem(KEY, token) : sessionStorage.removeItem(KEY); },
};

// ApiError carries the API's stable code and message.
export class ApiError extends Error {
  constructor(status, code, message, reason, errors) {
    super(message);
    this.status = status;
    this.code = code;
    this.reason = reason;
    this.errors = errors || [];
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

export function headers(extra) {
  const hs = Object.assign({Accept: 'application/json'}, extra);
  if (auth.token) hs.Authorization = 'Bearer ' + auth.token;
  return hs;
}

// call does one request and returns the decoded JSON; errors throw ApiError.
// A 401 also tells the page to ask for a token again.
export async function call(method, path, body) {
  const init = {method, headers: headers(body ? {'Content-Type': 'application/json'} : {})};
  if (body) init.body = JSON.stringify(body);
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'the daemon did not answer: ' + e.message);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const err = (data && data.error) || {};
    const e = new ApiError(res.status, err.code || 'http_' + res.status, err.message || text || res.statusText, err.reason, err.errors);
    if (res.status === 401) onUnauthorized(e);
    throw e;
  }
  return data;
}

export const get = path => call('GET', path);
export const post = (path, body) => call('POST', path, body);
export const del = path => call('DELETE', path);

// query builds a query string from the set fields of o.
export function query(o) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== '' && v != null) q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}
