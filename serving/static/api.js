// The API client: the bearer token kept for this tab (sessionStorage), JSON in and out,
// problem details turned into errors, ETags for polled lists.

const TOKEN_KEY = "healthos.token";
export const API = "/api/v1";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function keepToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** An API answer that is not a success; `status` and the problem's `detail`. */
export class ApiError extends Error {
  constructor(status, detail, problem) {
    super(detail || `the server answered ${status}`);
    this.status = status;
    this.problem = problem;
  }

  /** The route is not on this server (or the record does not exist). */
  get notFound() {
    return this.status === 404;
  }
}

let onUnauthorized = () => {};
/** Called when the token stops working (401): the app signs out. */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/**
 * Send a request. Returns {status, body, etag, response}; status 304 has no body.
 * Throws ApiError for 4xx/5xx (401 also calls the unauthorized handler).
 */
export async function request(path, { method = "GET", body, etag, raw = false, useToken } = {}) {
  const headers = { Accept: raw ? "*/*" : "application/json" };
  const bearer = useToken ?? token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (etag) headers["If-None-Match"] = etag;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path.startsWith("/") ? path : `${API}/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  if (response.status === 304) return { status: 304, body: null, etag, response };
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401 && useToken === undefined) onUnauthorized();
    throw new ApiError(response.status, problem && problem.detail, problem);
  }
  const result = raw ? await response.blob() : await response.json();
  return { status: response.status, body: result, etag: response.headers.get("ETag"), response };
}

export async function get(path, options) {
  return (await request(path, options)).body;
}

export async function post(path, body) {
  return (await request(path, { method: "POST", body })).body;
}

/** A query string from an object; arrays repeat the key; null/undefined are left out. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(key, item);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
