// What the admin pages (keys.js, secrets.js, audit.js) share: the role check, the view for
// a reader without the admin role, and how a refused change is told.
import { ApiError, may } from "./api.js";
import { el, show } from "./dom.js";

/** The view of an admin page for a reader whose role is lower (the API answers 403 too). */
export function forbiddenView(session) {
  return el("section", { id: "forbidden", className: "card" },
    el("h1", {}, "Admins only"),
    el("p", {}, "This page needs the admin role; you are signed in as ",
      el("strong", {}, session.role), "."),
    el("a", { href: "#/workflows" }, "Back to the workflows"));
}

/** True when `error` is the API refusing the role (not the CSRF token, not the tenant). */
export function isForbidden(error) {
  return error instanceof ApiError && error.status === 403 && error.code === "FORBIDDEN";
}

/**
 * Load an admin page: the forbidden view at once for a lower role, and again if the API
 * answers 403 FORBIDDEN; every other error goes to the router's `guarded`.
 */
export async function adminPage({ session, main, guarded }, load) {
  if (!may(session, "admin")) return show(main, forbiddenView(session));
  return guarded(async () => {
    try {
      await load();
    } catch (error) {
      if (isForbidden(error)) show(main, forbiddenView(session));
      else throw error;
    }
  });
}

/** What to tell the reader when a change was refused. */
export function refusal(error) {
  if (!(error instanceof ApiError)) return "The gateway did not answer: try again.";
  if (error.code === "CSRF_TOKEN_INVALID") {
    return "The change was refused: this page's security token (CSRF) is missing or no "
      + "longer valid. Reload the page, or sign out and sign in again.";
  }
  if (isForbidden(error)) return "The change was refused: it needs the admin role.";
  if (error.status === 429) {
    const wait = error.retryAfter ? ` in ${error.retryAfter} s` : " later";
    return `Too many requests: try again${wait}.`;
  }
  return error.message;
}

/**
 * Run a change (`act`, a promise-returning function): null when it held, else the ApiError
 * or error. A 401 (the session ended) goes to sign-in through `guarded`.
 */
export async function change(guarded, act) {
  try {
    await act();
    return null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      await guarded(async () => {
        throw error;
      });
    }
    return error;
  }
}

/** The message of the problem at `path` in a 422's errors, or null. */
export function problemAt(error, path) {
  if (!(error instanceof ApiError)) return null;
  const found = error.errors.find((item) => item.path === path);
  return found ? found.message : null;
}

/**
 * A two-step button: the first click shows "Really <label>" and "Cancel" in its place, the
 * second runs `onConfirm` (a promise). `warning` (or null) is said next to the confirmation.
 */
export function confirmButton(label, onConfirm, { warning = null, id = null } = {}) {
  const holder = el("span", { className: "confirm" });
  const first = el("button", { type: "button", className: "danger", id }, label);
  const really = el("button", { type: "button", className: "danger really" }, `Really ${label.toLowerCase()}`);
  const cancel = el("button", { type: "button", className: "cancel" }, "Cancel");
  const ask = [warning ? el("span", { className: "warning" }, warning) : null, really, cancel];
  const showFirst = () => holder.replaceChildren(first);
  first.addEventListener("click", () => {
    holder.replaceChildren(...ask.filter(Boolean));
    really.focus();
  });
  cancel.addEventListener("click", showFirst);
  really.addEventListener("click", async () => {
    really.disabled = true;
    cancel.disabled = true;
    try {
      await onConfirm();
    } finally {
      really.disabled = false;
      cancel.disabled = false;
    }
  });
  showFirst();
  return holder;
}

/** Actor -> the key's name, for `key:<tenant>:<id>` actors of the tenant's keys. */
export function keyNames(tenant, keys) {
  return new Map(keys.map((key) => [`key:${tenant}:${key.id}`, key.name]));
}

/** An actor as it is, followed by the name of its key when known (both as text). */
export function actorView(actor, names, link = null) {
  const name = names.get(actor);
  return [link || actor, name ? el("span", { className: "actor-name" }, name) : null];
}
