// The console: a single page with hash routes (#/workflows?q=...&limit=...).
import { ApiError, currentSession, listWorkflows, signIn, signOut } from "./api.js";
import { show } from "./dom.js";
import { headerView, problemView, signInView, workflowsView } from "./views.js";

const PAGE_SIZE = 25;
const top = document.getElementById("top");
const main = document.getElementById("main");
let session = null;

function route() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  const limit = Number.parseInt(params.get("limit") || "", 10);
  return {
    path: path || "/workflows",
    q: params.get("q") || "",
    limit: limit >= 1 && limit <= 100 ? limit : PAGE_SIZE,
  };
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

/** Runs a view's load; a 401 means the session is gone: back to sign-in. */
async function guarded(load) {
  try {
    await load();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) showSignIn();
    else show(main, problemView(error.message));
  }
}

async function workflows({ q, limit }) {
  const cursors = [];  // the cursors of the pages before this one
  const load = (cursor) => guarded(async () => {
    const page = await listWorkflows(session.tenant, { q, cursor, limit });
    show(main, workflowsView({
      q,
      page,
      onSearch: (text) => {
        const params = new URLSearchParams();
        if (text) params.set("q", text);
        if (limit !== PAGE_SIZE) params.set("limit", String(limit));
        const hash = `#/workflows${params.size ? `?${params}` : ""}`;
        if (location.hash === hash) render();
        else location.hash = hash;
      },
      onNext: (next) => {
        cursors.push(cursor);
        load(next);
      },
      onPrevious: cursors.length ? () => load(cursors.pop()) : null,
    }));
  });
  await load(null);
}

function render() {
  if (!session) return showSignIn();
  top.hidden = false;
  show(top, headerView(session, onSignOut));
  const current = route();
  return workflows(current);  // the only page so far
}

window.addEventListener("hashchange", () => render());
currentSession().then((found) => {
  session = found;
  render();
}, (error) => show(main, problemView(error.message)));
