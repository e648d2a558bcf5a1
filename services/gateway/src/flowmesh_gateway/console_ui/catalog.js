// #/catalog: what a workflow's nodes can be (viewers and up), with the API's kind and
// category filters in the URL; each entry links to its page (entry.js).
import { query, request } from "./api.js";
import { el, show } from "./dom.js";

export const KINDS = ["node", "action"];
export const CATEGORIES = ["control", "data", "integration", "events", "waiting", "notification", "ai"];
export const PAGE_SIZE = 50;

/** The page at #/catalog?kind=..&category=... */
export async function render(context) {
  const { main, params, guarded, navigate } = context;
  const filters = {
    kind: KINDS.includes(params.get("kind")) ? params.get("kind") : "",
    category: CATEGORIES.includes(params.get("category")) ? params.get("category") : "",
  };
  const cursors = [];
  const load = (cursor) => guarded(async () => {
    const page = await request("GET", `/catalog${query({ ...filters, limit: PAGE_SIZE, cursor })}`);
    if (!context.isCurrent()) return;
    show(main, catalogView({
      filters,
      page,
      onFilter: (chosen) => navigate("/catalog", chosen),
      onNext: (next) => {
        cursors.push(cursor);
        load(next);
      },
      onPrevious: cursors.length ? () => load(cursors.pop()) : null,
    }));
  });
  await load(null);
}

/** The link of an entry's page. */
export function entryHref(entry) {
  return `#/catalog/${encodeURIComponent(entry.kind)}/${encodeURIComponent(entry.name)}`;
}

function choice(id, label, options, value) {
  const select = el("select", { id, name: id.replace("catalog-", "") },
    el("option", { value: "" }, "all"), options.map((o) => el("option", { value: o }, o)));
  select.value = value;
  return [el("label", { for: id }, label), select];
}

/** The filters, the entries as a table, pagination. */
export function catalogView({ filters, page, onFilter, onNext, onPrevious }) {
  const [kindLabel, kind] = choice("catalog-kind", "Kind", KINDS, filters.kind);
  const [categoryLabel, category] = choice("catalog-category", "Category", CATEGORIES, filters.category);
  const form = el("form", { id: "catalog-filters", className: "filters" }, kindLabel, kind, categoryLabel, category);
  for (const select of [kind, category]) {
    select.addEventListener("change", () => onFilter({ kind: kind.value, category: category.value }));
  }
  form.addEventListener("submit", (event) => event.preventDefault());
  const rows = page.items.map((entry) => el("tr", { "data-name": entry.name, "data-kind": entry.kind },
    el("td", { className: "name" }, el("a", { href: entryHref(entry) }, entry.name)),
    el("td", { className: "kind" }, entry.kind),
    el("td", { className: "category" }, entry.category),
    el("td", { className: "description" }, entry.description)));
  const table = rows.length
    ? el("table", { id: "catalog" },
      el("thead", {}, el("tr", {}, ["Name", "Kind", "Category", "What it does"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows))
    : el("p", { id: "empty", className: "muted" }, "No entry matches.");
  const previous = el("button", { type: "button", id: "previous", disabled: !onPrevious }, "Previous");
  const next = el("button", { type: "button", id: "next", disabled: !page.next_cursor }, "Next");
  if (onPrevious) previous.addEventListener("click", () => onPrevious());
  if (page.next_cursor) next.addEventListener("click", () => onNext(page.next_cursor));
  return el("section", { id: "catalog-page", className: "card" },
    el("h1", {}, "Catalog"),
    el("p", { className: "muted" }, "What a workflow's nodes can be: open one for its parameters as a form, and the node as YAML to copy."),
    form, table, el("div", { className: "pager" }, previous, next));
}
