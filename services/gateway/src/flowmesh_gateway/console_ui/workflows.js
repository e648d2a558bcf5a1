// The workflows list: search, pages from the server (next_cursor), a row per workflow.
import { may, query, request } from "./api.js";
import { el, show, statusBadge } from "./dom.js";

export const PAGE_SIZE = 25;

/** One page of the tenant's workflows: {items, next_cursor, has_more}. */
export function listWorkflows({ q, cursor, limit }) {
  return request("GET", `/workflows${query({ limit, q, cursor })}`);
}

/** The page at #/workflows?q=...&limit=N. */
export async function render({ session, main, params, guarded, navigate, isCurrent }) {
  const q = params.get("q") || "";
  const asked = Number.parseInt(params.get("limit") || "", 10);
  const limit = asked >= 1 && asked <= 100 ? asked : PAGE_SIZE;
  const cursors = [];  // the cursors of the pages before this one
  const load = (cursor) => guarded(async () => {
    const page = await listWorkflows({ q, cursor, limit });
    if (!isCurrent()) return;  // the reader has gone to another page meanwhile
    show(main, workflowsView({
      q,
      page,
      canImport: may(session, "editor"),
      onSearch: (text) => navigate("/workflows", { q: text, limit: limit === PAGE_SIZE ? "" : limit }),
      onNext: (next) => {
        cursors.push(cursor);
        load(next);
      },
      onPrevious: cursors.length ? () => load(cursors.pop()) : null,
    }));
  });
  await load(null);
}

/**
 * The list: a search box, a table, pagination. `page` is the API's answer; `onSearch(q)`,
 * `onNext(cursor)`, `onPrevious()` (null when there is no previous page); `canImport` shows
 * the link to #/import.
 */
export function workflowsView({ q, page, canImport, onSearch, onNext, onPrevious }) {
  const search = el("input", {
    type: "search", id: "q", name: "q", value: q, placeholder: "Search names and descriptions",
  });
  const form = el("form", { id: "search", role: "search" }, search,
    el("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSearch(search.value.trim());
  });
  const rows = page.items.map((w) => el("tr", { "data-id": w.id },
    el("td", { className: "name" }, el("a", { href: `#/workflows/${encodeURIComponent(w.id)}` }, w.name)),
    el("td", { className: "version" }, `v${w.version}`),
    el("td", { className: "enabled" }, w.enabled ? "enabled" : "disabled"),
    el("td", { className: "tags" }, w.tags.map((t) => el("span", { className: "tag" }, t))),
    el("td", { className: "last-status" }, statusBadge(w.last_execution_status)),
  ));
  const table = rows.length
    ? el("table", { id: "workflows" },
      el("thead", {}, el("tr", {}, ["Name", "Version", "Enabled", "Tags", "Last status"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows))
    : el("p", { id: "empty", className: "muted" }, q ? "No workflow matches." : "No workflows yet.");
  const previous = el("button", { type: "button", id: "previous", disabled: !onPrevious }, "Previous");
  const next = el("button", { type: "button", id: "next", disabled: !page.next_cursor }, "Next");
  if (onPrevious) previous.addEventListener("click", () => onPrevious());
  if (page.next_cursor) next.addEventListener("click", () => onNext(page.next_cursor));
  return el("section", { className: "card" },
    el("div", { className: "title-row" }, el("h1", {}, "Workflows"),
      canImport ? el("a", { id: "import-link", className: "button", href: "#/import" }, "Import") : null),
    form, table, el("div", { className: "pager" }, previous, next));
}
