// #/admin/audit: the tenant's audit log (admin), newest first, pages from the server
// (next_cursor) and the API's filters (action, actor, target: exact values).
import { query, request } from "./api.js";
import { actorView, adminPage, keyNames } from "./admin.js";
import { el, show, when } from "./dom.js";

export const PAGE_SIZE = 25;
export const FILTERS = ["action", "actor", "target"];
/** Suggestions for the action filter (any action may be typed). */
export const ACTIONS = [
  "apikey.create", "apikey.revoke", "secret.put", "secret.delete", "console.sign_in",
  "workflow.create", "workflow.update", "workflow.patch", "workflow.delete", "workflow.apply",
  "workflow.import", "workflow.clone", "workflow.lock", "workflow.unlock",
  "webhook.secret_create", "webhook.secret_rotate", "http.webhook_receive",
];

/** The page at #/admin/audit?action=...&actor=...&target=...&limit=N. */
export async function render(context) {
  const { main, params, navigate } = context;
  const filters = Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || ""]));
  const asked = Number.parseInt(params.get("limit") || "", 10);
  const limit = asked >= 1 && asked <= 100 ? asked : PAGE_SIZE;
  const go = (chosen) => navigate("/admin/audit", { ...chosen, limit: limit === PAGE_SIZE ? "" : limit });
  const cursors = [];  // the cursors of the pages before this one
  const load = (cursor) => adminPage(context, async () => {
    const [page, keys] = await Promise.all([
      request("GET", `/audit${query({ ...filters, limit, cursor })}`),
      request("GET", "/api-keys"),
    ]);
    if (!context.isCurrent()) return;
    show(main, auditView({
      filters,
      page,
      names: keyNames(context.session.tenant, keys.items),
      onFilter: go,
      onNext: (next) => {
        cursors.push(cursor);
        load(next);
      },
      onPrevious: cursors.length ? () => load(cursors.pop()) : null,
    }));
  });
  await load(null);
}

/** A link that filters the log by one field's value (the value is text, in the hash). */
function filterLink(name, value) {
  return el("a", { href: `#/admin/audit${query({ [name]: value })}`, className: "filter-link" }, value);
}

/** An entry's detail as compact JSON text (empty for {}). */
export function detailText(detail) {
  return detail && Object.keys(detail).length ? JSON.stringify(detail) : "";
}

/**
 * The log: the filters, a table, pagination. `page` is the API's answer, `names` the key
 * names by actor (`keyNames`); `onFilter(filters)`,
 * `onNext(cursor)`, `onPrevious()` (null when there is no previous page).
 */
export function auditView({ filters, page, names, onFilter, onNext, onPrevious }) {
  const inputs = Object.fromEntries(FILTERS.map((name) => [name, el("input", {
    type: "search", id: `audit-${name}`, name, value: filters[name],
    list: name === "action" ? "audit-actions" : null, autocomplete: "off", spellcheck: "false",
  })]));
  const form = el("form", { id: "audit-filters", className: "inline-form", role: "search" },
    FILTERS.map((name) => [el("label", { for: `audit-${name}` }, name[0].toUpperCase() + name.slice(1)), inputs[name]]),
    el("datalist", { id: "audit-actions" }, ACTIONS.map((a) => el("option", { value: a }))),
    el("button", { type: "submit" }, "Filter"));
  const clear = el("button", { type: "button", id: "audit-clear" }, "Clear");
  clear.addEventListener("click", () => onFilter({}));
  form.append(clear);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onFilter(Object.fromEntries(FILTERS.map((name) => [name, inputs[name].value.trim()])));
  });
  const filtered = FILTERS.some((name) => filters[name]);
  const rows = page.items.map((entry) => el("tr", { "data-id": String(entry.id) },
    el("td", { className: "at" }, el("time", { datetime: entry.at }, when(entry.at))),
    el("td", { className: "actor" }, actorView(entry.actor, names, filterLink("actor", entry.actor))),
    el("td", { className: "action" }, filterLink("action", entry.action)),
    el("td", { className: "target" }, filterLink("target", entry.target)),
    el("td", { className: `outcome outcome-${entry.outcome}` }, entry.outcome),
    el("td", { className: "detail" }, el("code", {}, detailText(entry.detail))),
    el("td", { className: "request-id muted" }, entry.request_id)));
  const table = rows.length
    ? el("table", { id: "audit" },
      el("thead", {}, el("tr", {}, ["Time", "Actor", "Action", "Target", "Outcome", "Detail", "Request"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows))
    : el("p", { id: "empty", className: "muted" }, filtered ? "No entry matches." : "No entries yet.");
  const previous = el("button", { type: "button", id: "previous", disabled: !onPrevious }, "Previous");
  const next = el("button", { type: "button", id: "next", disabled: !page.next_cursor }, "Next");
  if (onPrevious) previous.addEventListener("click", () => onPrevious());
  if (page.next_cursor) next.addEventListener("click", () => onNext(page.next_cursor));
  return el("section", { className: "card admin" },
    el("h1", {}, "Audit log"),
    el("p", { className: "muted" }, "Every change and every refused access of the tenant, newest first. Filters match exact values; click a value to filter by it."),
    form, table, el("div", { className: "pager" }, previous, next));
}
