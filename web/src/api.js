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

/** GET /api/<path> with query parameters (empty ones left out). */
export async function get(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") query.set(k, String(v));
  }
  const qs = query.toString();
  const response = await fetch(`/api/${path}${qs ? `?${qs}` : ""}`, {
    headers: { Accept: "application/json" },
    credentials: "same-origin",
  });
  return handle(response);
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
