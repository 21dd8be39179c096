// The app's JSON API (same origin only). Errors carry the API's own message.

export class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error ? body.error : null;
    super(e ? e.message : `the server answered HTTP ${status}`);
    this.status = status;
    this.code = e ? e.code : "http";
    this.parameter = e ? e.parameter : null;
  }
}

async function handle(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function buildUrl(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") query.set(k, String(v));
  }
  const qs = query.toString();
  return `/api/${path}${qs ? `?${qs}` : ""}`;
}

function send(url) {
  return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
}

const early = new Map();
const EARLY_MS = 5_000;

/** Start a GET the first page will make, before the app has its config (the two then
 * travel together); the page's own `get` of the same URL, within a few seconds, takes it. */
export function prefetch(path, params = {}) {
  const url = buildUrl(path, params);
  const response = send(url);
  response.catch(() => {}); // a failure is the page's to report, when it asks
  early.set(url, { response, at: performance.now() });
}

/** GET /api/<path> with query parameters (empty ones left out). */
export async function get(path, params = {}) {
  const url = buildUrl(path, params);
  const started = early.get(url);
  early.delete(url);
  const fresh = started && performance.now() - started.at < EARLY_MS;
  return handle(await (fresh ? started.response : send(url)));
}

/** POST /api/<path> with a JSON body. */
export async function post(path, body) {
  const response = await fetch(`/api/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    credentials: "same-origin",
    body: JSON.stringify(body),
  });
  return handle(response);
}
