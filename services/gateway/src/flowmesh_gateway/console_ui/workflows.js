// The workflows list: search and filters (enabled, category, tags) kept in the URL, pages
// from the server (next_cursor), a row per workflow.
import { may, query, request } from "./api.js";
import { el, show, statusBadge } from "./dom.js";

export const PAGE_SIZE = 25;

/** The categories of the workflow language (DESIGN section 4). */
export const CATEGORIES = ["automation", "integration", "business-logic", "data-transformation",
  "notification", "approval", "other"];

/** One page of the tenant's workflows: {items, next_cursor, has_more}. */
export function listWorkflows({ q, enabled, category, tags, cursor, limit }) {
  return request("GET", `/workflows${query({ limit, q, enabled, category, tags, cursor })}`);
}

/** The filters of #/workflows?q=...&enabled=true&category=...&tags=a,b&limit=N. */
export function filtersOf(params) {
  const asked = Number.parseInt(params.get("limit") || "", 10);
  const enabled = params.get("enabled");
  const category = params.get("category");
  return {
    q: params.get("q") || "",
    enabled: enabled === "true" || enabled === "false" ? enabled : "",
    category: CATEGORIES.includes(category) ? category : "",
    tags: (params.get("tags") || "").split(",").map((t) => t.trim()).filter(Boolean).join(","),
    limit: asked >= 1 && asked <= 100 ? asked : PAGE_SIZE,
  };
}

/** The page at #/workflows with its filters. */
export async function render({ session, main, params, guarded, navigate, isCurrent }) {
  const filters = filtersOf(params);
  const { limit } = filters;
  const cursors = [];  // the cursors of the pages before this one
  const load = (cursor) => guarded(async () => {
    const page = await listWorkflows({ ...filters, cursor });
    if (!isCurrent()) return;  // the reader has gone to another page meanwhile
    show(main, workflowsView({
      filters,
      page,
      canImport: may(session, "editor"),
      onSearch: (chosen) => navigate("/workflows", { ...chosen, limit: limit === PAGE_SIZE ? "" : limit }),
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
 * The list: a search box and filters, a table, pagination. `page` is the API's answer;
 * `onSearch({q, enabled, category, tags})`,
 * `onNext(cursor)`, `onPrevious()` (null when there is no previous page); `canImport` shows
 * the link to #/import.
 */
export function workflowsView({ filters, page, canImport, onSearch, onNext, onPrevious }) {
  const { q } = filters;
  const search = el("input", {
    type: "search", id: "q", name: "q", value: q, placeholder: "Search names and descriptions",
  });
  const choice = (id, label, options, value) => el("label", { className: "filter" }, label,
    el("select", { id, name: id },
      options.map(([v, text]) => el("option", { value: v, selected: v === value }, text))));
  const enabled = choice("enabled", "Enabled", [["", "any"], ["true", "enabled"], ["false", "disabled"]],
    filters.enabled);
  const category = choice("category", "Category", [["", "any"], ...CATEGORIES.map((c) => [c, c])],
    filters.category);
  const tags = el("input", { type: "text", id: "tags", name: "tags", value: filters.tags,
    placeholder: "tags: a,b" });
  const form = el("form", { id: "search", role: "search" }, search, enabled, category, tags,
    el("button", { type: "submit" }, "Search"));
  const chosen = () => ({
    q: search.value.trim(),
    enabled: form.querySelector("#enabled").value,
    category: form.querySelector("#category").value,
    tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean).join(","),
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSearch(chosen());
  });
  const filtered = Boolean(q || filters.enabled || filters.category || filters.tags);
  const rows = page.items.map((w) => el("tr", { "data-id": w.id },
    el("td", { className: "name" }, el("a", { href: `#/workflows/${encodeURIComponent(w.id)}` }, w.name)),
    el("td", { className: "version" }, `v${w.version}`),
    el("td", { className: "enabled" }, w.enabled ? "enabled" : "disabled"),
    el("td", { className: "tags" }, w.tags.map((t) => el("a", {
      className: "tag", href: `#/workflows?tags=${encodeURIComponent(t)}`, title: `only the workflows tagged ${t}`,
    }, t))),
    el("td", { className: "last-status" }, statusBadge(w.last_execution_status)),
  ));
  const table = rows.length
    ? el("table", { id: "workflows" },
      el("thead", {}, el("tr", {}, ["Name", "Version", "Enabled", "Tags", "Last status"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows))
    : el("p", { id: "empty", className: "muted" }, filtered ? "No workflow matches." : "No workflows yet.");
  const previous = el("button", { type: "button", id: "previous", disabled: !onPrevious }, "Previous");
  const next = el("button", { type: "button", id: "next", disabled: !page.next_cursor }, "Next");
  if (onPrevious) previous.addEventListener("click", () => onPrevious());
  if (page.next_cursor) next.addEventListener("click", () => onNext(page.next_cursor));
  return el("section", { className: "card" },
    el("div", { className: "title-row" }, el("h1", {}, "Workflows"),
      canImport ? el("a", { id: "import-link", className: "button", href: "#/import" }, "Import") : null),
    form, table, el("div", { className: "pager" }, previous, next));
}
