// A connector's form (admins): name, base URL, hosts one per line, default headers as
// `Name: value` lines, and the auth kind with only that kind's fields. Credentials are
// secrets' names, never values. The API's 422 problems are shown by their fields.
import { el } from "./dom.js";

/** The auth kinds and the fields each one has (docs/connectors.md). */
export const AUTH_FIELDS = {
  none: [],
  bearer: ["secret"],
  basic: ["username", "password_secret"],
  header: ["name", "secret"],
  query: ["name", "secret"],
  oauth2_client_credentials: ["token_url", "client_id", "client_secret", "scopes", "audience"],
};
const OPTIONAL = new Set(["scopes", "audience"]);
/** Each auth field: its label and a hint. */
const AUTH_LABELS = {
  secret: ["Secret name", "The name of the tenant's secret that holds the credential (API_TOKEN), not its value."],
  username: ["Username", "Sent as it is (no colon)."],
  password_secret: ["Password secret name", "The name of the secret that holds the password."],
  name: ["Header or parameter name", "The header (X-Api-Key) or query parameter (api_key) the secret goes in."],
  token_url: ["Token URL", "Its host must be among the hosts."],
  client_id: ["Client id", "Sent as it is."],
  client_secret: ["Client secret name", "The name of the secret that holds the client secret."],
  scopes: ["Scopes", "Optional: one per line."],
  audience: ["Audience", "Optional."],
};

/** Lines of a textarea, trimmed, without empty ones. */
export function linesOf(text) {
  return text.split("\n").map((line) => line.trim()).filter(Boolean);
}

/** Headers as `Name: value` lines. */
export function headersText(headers) {
  return Object.entries(headers || {}).map(([name, value]) => `${name}: ${value}`).join("\n");
}

/** `Name: value` lines read back: {headers, problems} (a line without a colon is one). */
export function parseHeaders(text) {
  const headers = {};
  const problems = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const colon = line.indexOf(":");
    if (colon < 1) {
      problems.push({ path: "headers", message: `line ${i + 1} is not “Name: value”` });
      return;
    }
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  });
  return { headers, problems };
}

/** The PUT body of what the form holds: {body, problems}. `values` are the fields' texts by
 * their paths: `name`, `base_url`, `hosts`, `headers`, `auth.kind`, `auth.secret` ... */
export function connectorBody(values) {
  const { headers, problems } = parseHeaders(values.headers || "");
  const hosts = linesOf(values.hosts || "");
  const kind = values["auth.kind"] || "none";
  const auth = { kind };
  for (const field of AUTH_FIELDS[kind] || []) {
    const text = (values[`auth.${field}`] || "").trim();
    if (field === "scopes") {
      const scopes = linesOf(text);
      if (scopes.length) auth.scopes = scopes;
    } else if (text || !OPTIONAL.has(field)) auth[field] = text;
  }
  const body = { base_url: (values.base_url || "").trim(), auth };
  if (hosts.length) body.hosts = hosts;
  if (Object.keys(headers).length) body.headers = headers;
  return { body, problems };
}

/** The form's field a problem's path belongs to (`auth.scopes[0]` -> auth.scopes), or null. */
export function fieldOfPath(path) {
  const top = (path || "").split(/[.[]/)[0];
  if (["name", "base_url", "hosts", "headers"].includes(top)) return top;
  if (top !== "auth") return null;
  const inner = path.slice("auth".length).replace(/^\./, "").split(/[.[]/)[0];
  return `auth.${AUTH_LABELS[inner] ? inner : "kind"}`;
}

/**
 * connectorForm({connector, onSave}) -> the form node. `connector` (or null) prefills it
 * and fixes its name; `onSave(name, body)` sends it and answers null, or what was refused:
 * {problems (the API's, by path), message (or null)}.
 */
export function connectorForm({ connector, onSave }) {
  const general = el("p", { id: "connector-error", className: "error", role: "alert", hidden: true });
  const parts = { inputs: {}, errors: {}, general };
  const form = el("form", { id: "connector-form", className: "connector-form" },
    mainFields(parts, connector), authFieldset(parts, connector), general,
    el("button", { type: "submit" }, connector ? "Save connector" : "Create connector"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(Object.entries(parts.inputs).map(([key, node]) => [key, node.value]));
    const { body, problems } = connectorBody(values);
    if (problems.length) return showProblems(parts, problems);
    const name = values.name.trim();
    if (!name) return showProblems(parts, [{ path: "name", message: "A connector needs a name." }]);
    const refused = await onSave(name, body);
    return refused ? showProblems(parts, refused.problems, refused.message) : showProblems(parts, []);
  });
  return form;
}

/** A field of the form, kept in `parts` by its path (`base_url`, `auth.secret`). */
function field(parts, key, label, control, hint = null) {
  parts.inputs[key] = control;
  parts.errors[key] = el("p", { className: "error field-error", role: "alert", hidden: true });
  return el("div", { className: "field", "data-field": key },
    el("label", { for: control.id }, label), control,
    hint ? el("small", { className: "muted" }, hint) : null, parts.errors[key]);
}

function text(id, value, more = {}) {
  const node = el("input", { id, type: "text", autocomplete: "off", spellcheck: "false", ...more });
  node.value = value || "";
  return node;
}

function area(id, value) {
  const node = el("textarea", { id, rows: 3, spellcheck: "false", autocomplete: "off" });
  node.value = value || "";
  return node;
}

function mainFields(parts, connector) {
  const given = connector || { hosts: [] };
  return [
    field(parts, "name", "Name", text("connector-name", given.name,
      { readonly: Boolean(connector), required: true, placeholder: "slack" }),
    "Lowercase letters, digits, _ and -, starting with a letter."),
    field(parts, "base_url", "Base URL", text("connector-base-url", given.base_url,
      { required: true, placeholder: "https://slack.com/api" })),
    field(parts, "hosts", "Hosts", area("connector-hosts", given.hosts.join("\n")),
      "One per line; left empty, the base URL's host alone."),
    field(parts, "headers", "Default headers", area("connector-headers", headersText(given.headers)),
      "One “Name: value” per line; no credentials here (use the auth)."),
  ];
}

/** The auth kind's select and every kind's fields, only the chosen kind's shown. */
function authFieldset(parts, connector) {
  const auth = (connector && connector.auth) || { kind: "none" };
  const kind = el("select", { id: "connector-auth-kind" },
    Object.keys(AUTH_FIELDS).map((k) => el("option", { value: k }, k)));
  kind.value = auth.kind;
  const fields = Object.entries(AUTH_LABELS).map(([key, [label, hint]]) => {
    const id = `connector-auth-${key.replaceAll("_", "-")}`;
    const value = key === "scopes" ? (auth.scopes || []).join("\n") : auth[key];
    return [key, field(parts, `auth.${key}`, label, key === "scopes" ? area(id, value) : text(id, value), hint)];
  });
  const showKind = () => {
    for (const [key, node] of fields) node.hidden = !AUTH_FIELDS[kind.value].includes(key);
  };
  kind.addEventListener("change", showKind);
  showKind();
  return el("fieldset", { className: "auth" }, el("legend", {}, "Auth"),
    el("p", { className: "notice", id: "connector-secret-note" },
      "Credentials are the names of the tenant's secrets, never their values: set the values on the ",
      el("a", { href: "#/admin/secrets" }, "secrets page"), "."),
    field(parts, "auth.kind", "Kind", kind), fields.map(([, node]) => node));
}

function say(node, message) {
  node.hidden = !message;
  node.textContent = message || "";
}

/** Problems by their fields (several at one field are joined); the rest, and `fallback`,
 * above the button. */
function showProblems(parts, problems, fallback = null) {
  for (const node of Object.values(parts.errors)) say(node, null);
  const left = [];
  for (const problem of problems) {
    const node = parts.errors[fieldOfPath(problem.path)];
    if (!node) {
      left.push(`${problem.path}: ${problem.message}`);
      continue;
    }
    const before = node.hidden ? "" : `${node.textContent} `;
    say(node, `${before}${problem.message}${problem.path.includes("[") ? ` (${problem.path})` : ""}`);
  }
  say(parts.general, [...left, fallback].filter(Boolean).join(" ") || null);
}
