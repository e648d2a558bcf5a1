// #/admin/secrets: the tenant's secrets by name (admin). A value is typed into a password
// field, sent once in the PUT body and cleared from the page at once; no answer carries it.
import { request } from "./api.js";
import { adminPage, change, confirmButton, problemAt, refusal } from "./admin.js";
import { el, show, when } from "./dom.js";

export const NAME_HINT = "Capitals, digits and _, starting with a capital (at most 64): API_TOKEN";

/** The page at #/admin/secrets. */
export async function render(context) {
  const { main, guarded } = context;
  await adminPage(context, async () => {
    const parts = secretsPage();
    const load = async () => show(parts.list, secretsTable({
      secrets: (await request("GET", "/secrets")).items,
      onReplace: (name) => {
        parts.name.value = name;
        parts.value.focus();
      },
      onDelete: (name) => remove(name),
    }));
    const remove = async (name) => {
      let deleted = null;
      const refused = await change(guarded, async () => {
        deleted = await request("DELETE", `/secrets/${encodeURIComponent(name)}`);
      });
      clearMessages(parts);
      if (refused) return say(parts.error, refusal(refused));
      say(parts.notice, deletedMessage(deleted));
      return guarded(load);
    };
    parts.form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = parts.name.value.trim();
      const value = parts.value.value;
      parts.value.value = "";  // the value does not stay in the page, sent or refused
      if (!name) return say(parts.nameError, "A secret needs a name.");
      const refused = await change(guarded, () => request("PUT", `/secrets/${encodeURIComponent(name)}`, { value }));
      clearMessages(parts);
      if (refused) return showRefusal(parts, refused);
      parts.name.value = "";
      say(parts.notice, `The secret ${name} is set. Its value is not shown again.`);
      return guarded(load);
    });
    await load();
    if (context.isCurrent()) show(main, parts.page);
  });
}

function say(node, message) {
  node.hidden = !message;
  node.textContent = message || "";
}

function clearMessages(parts) {
  for (const node of [parts.error, parts.notice, parts.nameError, parts.valueError]) say(node, null);
}

/** A refused PUT: a problem at `name` or `value` by its field, anything else above. */
function showRefusal(parts, refused) {
  const atName = problemAt(refused, "name");
  const atValue = problemAt(refused, "value");
  say(parts.nameError, atName);
  say(parts.valueError, atValue);
  if (!atName && !atValue) say(parts.error, refusal(refused));
  (atName ? parts.name : parts.value).focus();
}

function deletedMessage(deleted) {
  const versions = deleted.invalidated || [];
  if (!versions.length) return `The secret ${deleted.name} is deleted.`;
  const named = versions.map((v) => `${v.workflow_id} v${v.version}`).join(", ");
  return `The secret ${deleted.name} is deleted; ${versions.length} workflow version(s) that named it are now invalid: ${named}.`;
}

/** The page's parts: the form to set a value, the list, the messages. */
function secretsPage() {
  const name = el("input", {
    id: "secret-name", name: "name", required: true, autocomplete: "off", spellcheck: "false",
    placeholder: "API_TOKEN", "aria-describedby": "secret-name-hint secret-name-error",
  });
  const value = el("input", {
    id: "secret-value", name: "value", type: "password", required: true,
    autocomplete: "new-password", spellcheck: "false", "aria-describedby": "secret-value-error",
  });
  const nameError = el("p", { id: "secret-name-error", className: "error field-error", role: "alert", hidden: true });
  const valueError = el("p", { id: "secret-value-error", className: "error field-error", role: "alert", hidden: true });
  const form = el("form", { id: "set-secret", className: "field-form" },
    el("div", { className: "field" },
      el("label", { for: "secret-name" }, "Name"), name,
      el("small", { id: "secret-name-hint", className: "muted" }, NAME_HINT), nameError),
    el("div", { className: "field" },
      el("label", { for: "secret-value" }, "Value"), value,
      el("small", { className: "muted" }, "Write-only: sent once, never shown again."), valueError),
    el("button", { type: "submit" }, "Set secret"));
  const error = el("p", { id: "secret-error", className: "error", role: "alert", hidden: true });
  const notice = el("p", { id: "secret-notice", className: "notice", role: "status", hidden: true });
  const list = el("div", { id: "secret-list" });
  const page = el("section", { className: "card admin" },
    el("h1", {}, "Secrets"),
    el("p", { className: "muted" }, "Names only: values are write-only. Workflows read them as secrets.NAME in an http node."),
    form, error, notice, list);
  return { page, form, name, value, nameError, valueError, error, notice, list };
}

/** The secrets as a table of names and times, each with "Set a new value" and delete. */
export function secretsTable({ secrets, onReplace, onDelete }) {
  if (!secrets.length) return el("p", { id: "empty", className: "muted" }, "No secrets yet.");
  const rows = secrets.map((secret) => {
    const replace = el("button", { type: "button", className: "replace" }, "Set a new value");
    replace.addEventListener("click", () => onReplace(secret.name));
    return el("tr", { "data-name": secret.name },
      el("td", { className: "name" }, el("code", {}, secret.name)),
      el("td", { className: "created" }, when(secret.created_at)),
      el("td", { className: "updated" }, when(secret.updated_at)),
      el("td", { className: "actions" }, replace, " ", confirmButton("Delete", () => onDelete(secret.name), {
        warning: "Workflow versions that name it turn invalid.",
      })));
  });
  return el("table", { id: "secrets" },
    el("thead", {}, el("tr", {}, ["Name", "Created", "Updated", ""]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows));
}
