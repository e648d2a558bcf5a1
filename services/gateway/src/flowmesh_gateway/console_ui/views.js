// The console's views: each takes data and callbacks and returns DOM nodes.
import { el } from "./dom.js";

/** The sign-in form; `onSubmit(key)` answers an error message or null. */
export function signInView(onSubmit) {
  const key = el("input", {
    type: "password", id: "key", name: "key", required: true,
    autocomplete: "off", spellcheck: "false", placeholder: "fm_<tenant>_…",
  });
  const error = el("p", { id: "sign-in-error", className: "error", role: "alert", hidden: true });
  const button = el("button", { type: "submit" }, "Sign in");
  const form = el("form", { id: "sign-in", method: "post", className: "card" },
    el("h1", {}, "Flowmesh console"),
    el("label", { for: "key" }, "API key"), key, button, error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    const typed = key.value;
    key.value = "";  // the key does not stay in the page
    const message = await onSubmit(typed);
    button.disabled = false;
    error.hidden = message === null;
    error.textContent = message || "";
    if (message) key.focus();
  });
  return form;
}

/** The header: the tenant, the role and a sign-out button. */
export function headerView(session, onSignOut) {
  const button = el("button", { type: "button", id: "sign-out" }, "Sign out");
  button.addEventListener("click", () => onSignOut());
  return [
    el("span", { className: "brand" }, "Flowmesh"),
    el("nav", {}, el("a", { href: "#/workflows" }, "Workflows")),
    el("span", { className: "who" },
      el("span", { id: "tenant" }, session.tenant), " · ",
      el("span", { id: "role" }, session.role)),
    button,
  ];
}

function statusBadge(status) {
  return status
    ? el("span", { className: `status status-${status}` }, status)
    : el("span", { className: "muted" }, "never run");
}

/**
 * The workflows list: a search box, a table, pagination. `page` is the API's answer;
 * `onSearch(q)`, `onNext()`, `onPrevious()` (null when there is no previous page).
 */
export function workflowsView({ q, page, onSearch, onNext, onPrevious }) {
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
    el("td", { className: "name" }, w.name),
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
    el("h1", {}, "Workflows"), form, table, el("div", { className: "pager" }, previous, next));
}

export function problemView(message) {
  return el("p", { className: "error", role: "alert" }, message);
}
