// #/connectors: the tenant's connectors (viewers and up), pages from the server
// (next_cursor); admins get a form to create one. What a connector page shares with its
// detail (connector.js): the warning for missing secrets, and how a save is sent.
import { ApiError, may, query, request } from "./api.js";
import { change, refusal } from "./admin.js";
import { el, show } from "./dom.js";
import { connectorForm } from "./connectorform.js";

export const PAGE_SIZE = 25;

/** The page at #/connectors[?limit=N]. */
export async function render(context) {
  const { session, main, params, guarded, navigate } = context;
  const asked = Number.parseInt(params.get("limit") || "", 10);
  const limit = asked >= 1 && asked <= 100 ? asked : PAGE_SIZE;
  const cursors = [];
  const creating = el("div", { id: "connector-create" });
  if (may(session, "admin")) {
    const open = el("button", { type: "button", id: "new-connector" }, "New connector");
    open.addEventListener("click", () => show(creating, connectorForm({
      connector: null,
      onSave: (name, body) => save(guarded, name, body, () => navigate(`/connectors/${encodeURIComponent(name)}`)),
    })));
    show(creating, open);
  }
  const load = (cursor) => guarded(async () => {
    const page = await request("GET", `/connectors${query({ limit, cursor })}`);
    if (!context.isCurrent()) return;
    show(main, el("section", { id: "connectors-page", className: "card" },
      el("h1", {}, "Connectors"),
      el("p", { className: "muted" }, "External services the tenant's http nodes may name: where they live, which hosts they may reach, their headers and auth (by secrets' names)."),
      params.get("deleted")
        ? el("p", { id: "connector-notice", className: "notice", role: "status" }, `The connector ${params.get("deleted")} is deleted.`)
        : null,
      creating,
      connectorsView({
        page,
        onNext: (next) => {
          cursors.push(cursor);
          load(next);
        },
        onPrevious: cursors.length ? () => load(cursors.pop()) : null,
      })));
  });
  await load(null);
}

/**
 * PUT the connector; answers null when it held (then `done()`), else what the form shows:
 * {problems, message}. A 401 goes to sign-in (admin.js `change`).
 */
export async function save(guarded, name, body, done) {
  const refused = await change(guarded, () => request("PUT", `/connectors/${encodeURIComponent(name)}`, body));
  if (!refused) {
    done();
    return null;
  }
  const problems = refused instanceof ApiError && refused.status === 422 ? refused.errors : [];
  return { problems, message: problems.length ? null : refusal(refused) };
}

/** The names of secrets a connector uses that the tenant has not set, each a link. */
export function missingView(names) {
  if (!names || !names.length) return null;
  return el("p", { className: "missing-secrets warning" },
    "Missing secrets: ",
    names.map((name, i) => [i ? ", " : "", el("a", { href: "#/admin/secrets", className: "secret-link" }, name)]),
    ". Its requests fail until they are set.");
}

/** The list: a table, pagination (`onNext(cursor)`, `onPrevious()` or null). */
export function connectorsView({ page, onNext, onPrevious }) {
  const rows = page.items.map((connector) => el("tr", { "data-name": connector.name },
    el("td", { className: "name" },
      el("a", { href: `#/connectors/${encodeURIComponent(connector.name)}` }, connector.name)),
    el("td", { className: "base-url" }, el("code", {}, connector.base_url)),
    el("td", { className: "auth-kind" }, connector.auth.kind),
    el("td", { className: "hosts" }, connector.hosts.join(", ")),
    el("td", { className: "version" }, `v${connector.version}`),
    el("td", { className: "missing" }, missingView(connector.missing_secrets))));
  const table = rows.length
    ? el("table", { id: "connectors" },
      el("thead", {}, el("tr", {}, ["Name", "Base URL", "Auth", "Hosts", "Version", ""]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows))
    : el("p", { id: "empty", className: "muted" }, "No connectors yet.");
  const previous = el("button", { type: "button", id: "previous", disabled: !onPrevious }, "Previous");
  const next = el("button", { type: "button", id: "next", disabled: !page.next_cursor }, "Next");
  if (onPrevious) previous.addEventListener("click", () => onPrevious());
  if (page.next_cursor) next.addEventListener("click", () => onNext(page.next_cursor));
  return [table, el("div", { className: "pager" }, previous, next)];
}
