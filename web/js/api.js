// api.js - the panel's only door to the JSON API (/api/v1, doc/admin-api.md): JSON bodies,
// the X-CSRF-Token header on every change, and one error type for every failure.
// It holds no page state; app.js decides what a 401 means for the session.

const BASE = "/api/v1";
let csrfToken = null;
let onUnauthorized = null;

export class ApiError extends Error {
  // status: the HTTP status (0 when the server did not answer); code, rule, fields: from
  // the error object of SPEC section 7.
  constructor(status, code, rule, message, fields) {
    super(message);
    this.status = status;
    this.code = code;
    this.rule = rule || null;
    this.fields = Array.isArray(fields) ? fields : [];
  }
}

export function setCsrf(token) {
  csrfToken = token || null;
}

// fn(error) runs when a request that needed a login answers 401.
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

// Encodes one path segment (a domain, JID or name may hold any character).
export function seg(s) {
  return encodeURIComponent(String(s));
}

// api("GET", "/partners") -> parsed JSON body (null for 204); throws ApiError.
// opts.quiet401: do not call the unauthorized handler (the login form's own requests).
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let res;
  try {
    res = await fetch(BASE + path, init);
  } catch (e) {
    throw new ApiError(0, "io", null, "The server did not answer. Is fedgated running?", []);
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = null;
    }
  }
  if (res.ok) return data;
  const e = data && data.error ? data.error : {};
  let message = e.message || `${res.status} ${res.statusText || "error"}`;
  if (res.status === 429) {
    const after = res.headers.get("Retry-After");
    if (after) message += ` (try again in ${after} s)`;
  }
  const err = new ApiError(res.status, e.code || "io", e.rule, message, e.fields);
  if (res.status === 401 && !opts.quiet401 && onUnauthorized) onUnauthorized(err);
  throw err;
}
