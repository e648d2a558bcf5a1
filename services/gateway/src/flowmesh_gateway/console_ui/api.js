// The gateway's API, with the session cookie (HttpOnly: this code never sees it). The CSRF
// token lives in this module's memory only; the API key is sent once, in the sign-in body.

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.code = problem ? problem.code : undefined;
    this.retryAfter = retryAfter;
  }
}

let csrfToken = null;

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
    redirect: "error",
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, data, response.headers.get("Retry-After"));
  }
  return data;
}

function remember(session) {
  csrfToken = session.csrf_token;
  return { tenant: session.tenant, role: session.role };
}

/** Sign in with an API key: {tenant, role}; throws ApiError (401, 429). */
export async function signIn(key) {
  return remember(await request("POST", "/console/session", { key }));
}

/** The cookie's session, or null when there is none. */
export async function currentSession() {
  try {
    return remember(await request("GET", "/console/session"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

export async function signOut() {
  try {
    await request("DELETE", "/console/session");
  } finally {
    csrfToken = null;
  }
}

/** One page of the tenant's workflows: {items, next_cursor, has_more}. */
export function listWorkflows(tenant, { q, cursor, limit }) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (q) query.set("q", q);
  if (cursor) query.set("cursor", cursor);
  return request("GET", `/api/v1/${encodeURIComponent(tenant)}/workflows?${query}`);
}
