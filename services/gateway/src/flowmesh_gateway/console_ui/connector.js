// #/connectors/<name>: one connector, every field as text (viewers and up); admins may edit
// it (the whole connector is replaced, a new version) or delete it (asked twice, in the page).
import { may, request } from "./api.js";
import { change, confirmButton, refusal } from "./admin.js";
import { el, show, when } from "./dom.js";
import { connectorForm, headersText } from "./connectorform.js";
import { missingView, save } from "./connectors.js";

/** The page at #/connectors/<name>. */
export async function render(context) {
  const { session, main, values, guarded, navigate } = context;
  const name = values.name;
  const path = `/connectors/${encodeURIComponent(name)}`;
  const connector = await request("GET", path);
  if (!context.isCurrent()) return;
  const editing = el("div", { id: "connector-edit" });
  const error = el("p", { id: "connector-delete-error", className: "error", role: "alert", hidden: true });
  let actions = null;
  if (may(session, "admin")) {
    const edit = el("button", { type: "button", id: "edit-connector" }, "Edit");
    edit.addEventListener("click", () => show(editing, connectorForm({
      connector,
      onSave: (same, body) => save(guarded, same, body, () => navigate(`/connectors/${encodeURIComponent(same)}`)),
    })));
    const remove = confirmButton("Delete", async () => {
      const refused = await change(guarded, () => request("DELETE", path));
      if (!refused) return navigate("/connectors", { deleted: name });
      error.hidden = false;
      error.textContent = refusal(refused);
      return undefined;
    }, { id: "delete-connector", warning: "Workflows that name it keep their stored versions, but their http steps will fail." });
    actions = el("div", { className: "actions" }, edit, remove);
  }
  show(main, el("section", { id: "connector", className: "card" },
    el("p", {}, el("a", { href: "#/connectors" }, "All connectors")),
    el("h1", { id: "connector-title" }, connector.name),
    missingView(connector.missing_secrets),
    factsView(connector), actions, error, editing));
}

/** The auth's fields, each [label, text]. */
function authFacts(auth) {
  return Object.entries(auth).filter(([key]) => key !== "kind").map(([key, value]) => [
    `auth.${key}`, Array.isArray(value) ? value.join(" ") : String(value),
  ]);
}

/** Every field of a connector as text, in a definition list. */
export function factsView(connector) {
  const facts = [
    ["Name", connector.name],
    ["Base URL", connector.base_url],
    ["Hosts", connector.hosts.join("\n")],
    ["Headers", headersText(connector.headers) || "none"],
    ["Auth", connector.auth.kind],
    ...authFacts(connector.auth),
    ["Missing secrets", (connector.missing_secrets || []).join(", ") || "none"],
    ["Version", `v${connector.version}`],
    ["Created", `${when(connector.created_at)} by ${connector.created_by}`],
    ["Updated", `${when(connector.updated_at)} by ${connector.updated_by}`],
  ];
  return el("dl", { id: "connector-facts", className: "facts" },
    facts.map(([label, text]) => [el("dt", {}, label),
      el("dd", { "data-fact": label }, el("span", { className: "pre" }, text))]));
}
