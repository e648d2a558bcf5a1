// The console: a single page with hash routes (#/workflows?q=..., #/runs/<id>, ...). Each
// page is a module whose `render(context)` fills `main`; the router gives it the session,
// the route's parameters, `guarded` (a 401 goes back to sign-in, a 404 says "not found"),
// `navigate`, `onLeave` (what to stop when the reader goes to another page) and
// `signedOut` (a stream found the session gone: back to sign-in).
import { ApiError, currentSession, signIn, signOut } from "./api.js";
import { el, problemView, show } from "./dom.js";
import { headerView, signInView } from "./signin.js";

/** [pattern of the path, the page's module, names of the pattern's groups]. */
const ROUTES = [
  [/^\/workflows$/, "./workflows.js", []],
  [/^\/admin\/keys$/, "./keys.js", []],
  [/^\/admin\/secrets$/, "./secrets.js", []],
  [/^\/admin\/audit$/, "./audit.js", []],
  [/^\/workflows\/([^/]+)$/, "./workflow.js", ["id"]],
  [/^\/import$/, "./importer.js", []],
  [/^\/runs$/, "./runs.js", []],
  [/^\/runs\/([^/]+)$/, "./run.js", ["id"]],
  [/^\/connectors$/, "./connectors.js", []],
  [/^\/connectors\/([^/]+)$/, "./connector.js", ["name"]],
  [/^\/catalog$/, "./catalog.js", []],
  [/^\/catalog\/([^/]+)\/([^/]+)$/, "./entry.js", ["kind", "name"]],
];

const top = document.getElementById("top");
const main = document.getElementById("main");
let session = null;
let leaving = [];  // what the current page asked to stop when it is left
let shown = 0;  // which render is current: a slow page must not draw over a newer one

function route() {
  const [path, search] = location.hash.replace(/^#/, "").split("?");
  return { path: path || "/workflows", params: new URLSearchParams(search || "") };
}

function signInMessage(error) {
  if (error instanceof ApiError && error.status === 429) {
    const wait = error.retryAfter ? ` in ${error.retryAfter} s` : " later";
    return `Too many sign-in attempts: try again${wait}.`;
  }
  if (error instanceof ApiError && error.status === 401) return "That key was not accepted.";
  return "Sign-in failed: the gateway did not answer.";
}

function showSignIn() {
  leave();
  session = null;
  top.hidden = true;
  show(top);
  show(main, signInView(async (key) => {
    try {
      session = await signIn(key);
    } catch (error) {
      return signInMessage(error);
    }
    render();
    return null;
  }));
  document.getElementById("key").focus();
}

async function onSignOut() {
  try {
    await signOut();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) throw error;
  }
  history.replaceState(null, "", location.pathname);
  showSignIn();
}

export function notFoundView() {
  return el("section", { id: "not-found", className: "card" },
    el("h1", {}, "Not found"),
    el("p", { className: "muted" }, "There is nothing here, or it is not yours to see."),
    el("a", { href: "#/workflows" }, "Back to the workflows"));
}

function leave() {
  for (const stop of leaving) stop();
  leaving = [];
}

function navigate(path, params = {}) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const hash = `#${path}${search.size ? `?${search}` : ""}`;
  if (location.hash === hash) render();
  else location.hash = hash;
}

async function render() {
  leave();
  if (!session) return showSignIn();
  const current = ++shown;
  top.hidden = false;
  show(top, headerView(session, onSignOut));
  const { path, params } = route();
  const found = ROUTES.map(([pattern, module, names]) => [pattern.exec(path), module, names])
    .find(([match]) => match);
  if (!found) return show(main, notFoundView());
  const [match, module, names] = found;
  const values = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(match[i + 1])]));
  const page = await import(module);
  if (current !== shown) return undefined;
  const guarded = async (load) => {
    try {
      await load();
    } catch (error) {
      if (current !== shown) return;
      if (error instanceof ApiError && error.status === 401) showSignIn();
      else if (error instanceof ApiError && error.status === 404) show(main, notFoundView());
      else show(main, problemView(error.message));
    }
  };
  return guarded(() => page.render({
    session, main, params, values, guarded, navigate,
    onLeave: (stop) => leaving.push(stop),
    signedOut: () => current === shown && showSignIn(),
    isCurrent: () => current === shown,
  }));
}

window.addEventListener("hashchange", () => render());
currentSession().then((found) => {
  session = found;
  render();
}, (error) => show(main, problemView(error.message)));
