// The gateway's API, with the session cookie (HttpOnly: this code never sees it). The CSRF
// token lives in this module's memory only; the API key is sent once, in the sign-in body.

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.code = problem ? problem.code : undefined;
    this.errors = (problem && problem.errors) || [];
    this.retryAfter = retryAfter;
  }
}

let csrfToken = null;
let tenantId = null;

/**
 * One call: `path` is under the tenant (`/workflows`) unless it starts with `//`-free `/api`
 * or `/console`. `body` is JSON unless `contentType` says otherwise (then a string).
 * Answers the decoded JSON (null for 204), or the text when `text` is set. `headers` are
 * more request headers (`If-Match`); `onHeaders(headers)` sees a successful answer's.
 */
export async function request(
  method, path, body, { contentType, accept, text, headers: more, onHeaders } = {},
) {
  const headers = { ...more, Accept: accept || "application/json" };
  if (body !== undefined) headers["Content-Type"] = contentType || "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(url(path), {
    method,
    headers,
    body: body === undefined ? undefined : contentType ? body : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
    redirect: "error",
  });
  if (!response.ok) {
    const problem = await response.json().catch(() => null);
    throw new ApiError(response.status, problem, response.headers.get("Retry-After"));
  }
  if (onHeaders) onHeaders(response.headers);
  if (response.status === 204) return null;
  return text ? response.text() : response.json().catch(() => null);
}

/** The URL of a tenant path (`/runs/x` -> `/api/v1/<tenant>/runs/x`). */
export function url(path) {
  if (path.startsWith("/console/") || path.startsWith("/api/")) return path;
  return `/api/v1/${encodeURIComponent(tenantId)}${path}`;
}

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const found = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") found.set(name, String(value));
  }
  const text = found.toString();
  return text ? `?${text}` : "";
}

function remember(session) {
  csrfToken = session.csrf_token;
  tenantId = session.tenant;
  return { tenant: session.tenant, role: session.role, keyId: session.key_id };
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

/** Whether the cookie's session still holds: asked when a stream closes, since the gateway
 * ends a stream whose session or key has gone (and then refuses it with 401). */
export async function sessionHolds() {
  try {
    await request("GET", "/console/session");
    return true;
  } catch (error) {
    return !(error instanceof ApiError && error.status === 401);
  }
}

export async function signOut() {
  try {
    await request("DELETE", "/console/session");
  } finally {
    csrfToken = null;
    tenantId = null;
  }
}

/** What a role may do, as the API judges it (the console hides what would be refused). */
const RANKS = { viewer: 0, operator: 1, editor: 2, admin: 3 };
export function may(session, role) {
  return (RANKS[session.role] ?? -1) >= RANKS[role];
}
