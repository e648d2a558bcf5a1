// The runs list (#/runs?status=failed&workflow_id=...): the run history with the API's
// filters (kept in the URL), pages from the server (next_cursor), and live updates: the
// tenant's event stream (GET /events/stream) refreshes the page, at most once a second.
import { ApiError, query, request, sessionHolds, url } from "./api.js";
import { el, show, statusBadge, when } from "./dom.js";
import { between, KINDS } from "./fold.js";
import { waitingText } from "./run.js";

export const PAGE_SIZE = 25;
/** At most one refresh per this many milliseconds, however many events come. */
export const REFRESH_MS = 1000;
/** How long after the gateway closed the tenant's stream it is opened again. */
export const REOPEN_MS = 1500;
export const STATUSES = ["queued", "scheduled", "running", "succeeded", "failed", "cancelled", "timed_out"];
export const TRIGGER_KINDS = ["api", "cron", "event", "webhook", "retry", "workflow", "delay"];
const FILTERS = ["status", "workflow_id", "trigger_kind", "created_after", "created_before"];

/** The filters of the URL, as the API takes them. */
export function filtersOf(params) {
  return Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || ""]));
}

/** An RFC 3339 time as a datetime-local input's value (the reader's time), and back. */
export function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromLocalInput(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

/** The page at #/runs. */
export async function render({ main, params, navigate, onLeave, guarded, isCurrent, signedOut }) {
  const filters = filtersOf(params);
  const asked = Number.parseInt(params.get("limit") || "", 10);
  const limit = asked >= 1 && asked <= 100 ? asked : PAGE_SIZE;
  const names = new Map();  // workflow id -> name (or null when it cannot be read)
  const cursors = [];
  let cursor = null;
  const holder = el("div", { id: "runs-holder" });
  const pager = el("div", { className: "pager" });
  const live = el("span", { id: "runs-live", className: "muted", "data-refreshes": "0" }, "");
  show(main, el("section", { className: "card" },
    el("h1", {}, "Runs ", live),
    filtersForm(filters, (chosen) => navigate("/runs", { ...chosen, limit: limit === PAGE_SIZE ? "" : limit })),
    holder, pager));

  let refreshes = 0;
  const load = (at) => guarded(async () => {
    const page = await request("GET", `/runs${query({ ...filters, limit, cursor: at })}`);
    const items = await withWaiting(page.items);
    await nameWorkflows(names, items);
    if (!isCurrent()) return;
    cursor = at;
    refreshes += 1;
    live.setAttribute("data-refreshes", String(refreshes));
    show(holder, runsTable(items, names, filters));
    show(pager, pagerView(page, cursors.length > 0, () => {
      cursors.push(cursor);
      load(page.next_cursor);
    }, () => load(cursors.pop())));
  });
  await load(null);
  follow({ filters, onLeave, refresh: () => load(cursor), live, signedOut });
}

/** Queued runs of a list carry no `waiting`: each is read on its own (the page is small). */
async function withWaiting(items) {
  return Promise.all(items.map(async (run) => {
    if (run.status !== "queued" || run.waiting) return run;
    try {
      return await request("GET", `/runs/${encodeURIComponent(run.id)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return run;
      throw error;
    }
  }));
}

async function nameWorkflows(names, items) {
  const unknown = [...new Set(items.map((run) => run.workflow_id))].filter((id) => !names.has(id));
  await Promise.all(unknown.map(async (id) => {
    try {
      names.set(id, (await request("GET", `/workflows/${encodeURIComponent(id)}`)).name);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
      names.set(id, null);
    }
  }));
}

/** Refresh when a run event of the tenant comes, at most once every REFRESH_MS. A stream
 * the gateway closed (or refused) is opened again, unless the session has gone. */
function follow({ filters, onLeave, refresh, live, signedOut }) {
  let source = null;
  let timer = null;
  let reopen = null;
  let stopped = false;
  let last = 0;
  const onEvent = () => {
    if (timer !== null) return;
    const wait = Math.max(0, last + REFRESH_MS - Date.now());
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      refresh();
    }, wait);
  };
  const open = () => {
    source = new EventSource(url(`/events/stream${query({ workflow_id: filters.workflow_id })}`), { withCredentials: true });
    for (const kind of KINDS) source.addEventListener(kind, onEvent);
    source.addEventListener("open", () => show(live, "live"));
    source.addEventListener("error", () => {
      show(live, "reconnecting…");
      if (stopped || source.readyState !== EventSource.CLOSED) return;
      reopen = setTimeout(async () => {
        if (stopped) return;
        if (await sessionHolds()) {
          if (!stopped) open();
        } else {
          stopped = true;
          signedOut();
        }
      }, REOPEN_MS);
    });
  };
  open();
  onLeave(() => {
    stopped = true;
    source.close();
    clearTimeout(timer);
    clearTimeout(reopen);
  });
}

function select(name, label, options, chosen) {
  return el("label", {}, `${label} `, el("select", { id: `filter-${name}`, name },
    el("option", { value: "" }, "any"),
    options.map((option) => el("option", { value: option, selected: option === chosen }, option))));
}

function filtersForm(filters, onFilter) {
  const workflow = el("input", { id: "filter-workflow_id", name: "workflow_id", value: filters.workflow_id, placeholder: "workflow id", size: 38 });
  const after = el("input", { id: "filter-created_after", name: "created_after", type: "datetime-local", value: toLocalInput(filters.created_after) });
  const before = el("input", { id: "filter-created_before", name: "created_before", type: "datetime-local", value: toLocalInput(filters.created_before) });
  const form = el("form", { id: "run-filters", className: "filters" },
    select("status", "Status", STATUSES, filters.status),
    select("trigger_kind", "Trigger", TRIGGER_KINDS, filters.trigger_kind),
    el("label", {}, "Workflow ", workflow),
    el("label", {}, "From ", after),
    el("label", {}, "To ", before),
    el("button", { type: "submit" }, "Filter"),
    el("a", { href: "#/runs", id: "clear-filters" }, "Clear"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onFilter({
      status: form.querySelector("#filter-status").value,
      trigger_kind: form.querySelector("#filter-trigger_kind").value,
      workflow_id: workflow.value.trim(),
      created_after: fromLocalInput(after.value),
      created_before: fromLocalInput(before.value),
    });
  });
  return form;
}

function runsTable(items, names, filters) {
  if (!items.length) {
    const filtered = FILTERS.some((name) => filters[name]);
    return el("p", { id: "empty", className: "muted" }, filtered ? "No run matches." : "No runs yet.");
  }
  const rows = items.map((run) => {
    const name = names.get(run.workflow_id);
    const link = `#/runs/${encodeURIComponent(run.id)}`;
    return el("tr", { "data-id": run.id, "data-status": run.status },
      el("td", { className: "run-id" }, el("a", { href: link }, run.id.slice(-12))),
      el("td", { className: "workflow" }, el("a", { href: link }, name || run.workflow_id), ` v${run.version}`),
      el("td", { className: "status-cell" }, statusBadge(run.status),
        run.waiting ? el("div", { className: "waiting muted" }, waitingText(run.waiting)) : null),
      el("td", { className: "trigger" }, run.trigger ? run.trigger.kind : ""),
      el("td", { className: "created" }, when(run.created_at)),
      el("td", { className: "duration" }, run.finished_at ? `${between(run.started_at || run.created_at, run.finished_at)} ms` : ""));
  });
  return el("table", { id: "runs" },
    el("thead", {}, el("tr", {}, ["Run", "Workflow", "Status", "Trigger", "Created", "Duration"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows));
}

function pagerView(page, hasPrevious, onNext, onPrevious) {
  const previous = el("button", { type: "button", id: "previous", disabled: !hasPrevious }, "Previous");
  const next = el("button", { type: "button", id: "next", disabled: !page.next_cursor }, "Next");
  if (hasPrevious) previous.addEventListener("click", onPrevious);
  if (page.next_cursor) next.addEventListener("click", onNext);
  return [previous, next];
}
