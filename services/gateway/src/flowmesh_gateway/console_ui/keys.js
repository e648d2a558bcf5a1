// #/admin/keys: the tenant's API keys (admin). A new key is shown once, in the page only:
// never in a URL or browser storage, and gone when the reader leaves the page.
import { request, signOut } from "./api.js";
import { actorView, adminPage, change, confirmButton, keyNames, problemAt, refusal } from "./admin.js";
import { el, show, when } from "./dom.js";

export const ROLES = ["viewer", "operator", "editor", "admin"];

/** The page at #/admin/keys. */
export async function render(context) {
  const { session, main, guarded, onLeave } = context;
  await adminPage(context, async () => {
    const parts = keysPage(session);
    const load = async () => show(parts.list, keysTable({
      keys: (await request("GET", "/api-keys")).items,
      tenant: session.tenant,
      ownId: session.keyId,
      onRevoke: (key) => revoke(key),
    }));
    const revoke = async (key) => {
      const refused = await change(guarded, () => request("DELETE", `/api-keys/${encodeURIComponent(key.id)}`));
      if (refused) return say(parts.error, refusal(refused));
      if (key.id === session.keyId) return ended(main);
      say(parts.error, null);
      say(parts.notice, `The key “${key.name}” is revoked: the API refuses it within seconds.`);
      return guarded(load);
    };
    parts.form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = parts.name.value.trim();
      const role = parts.role.value;
      let created = null;
      const refused = await change(guarded, async () => {
        created = await request("POST", "/api-keys", { name, role });
      });
      say(parts.notice, null);
      if (refused) {
        show(parts.shown);
        return say(parts.error, problemAt(refused, "name") || refusal(refused));
      }
      say(parts.error, null);
      parts.name.value = "";
      show(parts.shown, shownKeyView(created, () => show(parts.shown)));
      return guarded(load);
    });
    onLeave(() => show(parts.shown));  // the key is not kept once the page is left
    await load();
    if (context.isCurrent()) show(main, parts.page);
  });
}

/** Set (or hide, with null) a message element's text. */
function say(node, message) {
  node.hidden = !message;
  node.textContent = message || "";
}

/** The page's parts: the creation form, where a new key shows, the list, the messages. */
function keysPage(session) {
  const name = el("input", { id: "key-name", name: "name", required: true, maxlength: 200, autocomplete: "off" });
  const role = el("select", { id: "key-role", name: "role" },
    ROLES.map((r) => el("option", { value: r }, r)));
  const form = el("form", { id: "create-key", className: "inline-form" },
    el("label", { for: "key-name" }, "Name"), name,
    el("label", { for: "key-role" }, "Role"), role,
    el("button", { type: "submit" }, "Create key"));
  const error = el("p", { id: "key-error", className: "error", role: "alert", hidden: true });
  const notice = el("p", { id: "key-notice", className: "notice", role: "status", hidden: true });
  const shown = el("div", { id: "key-shown-slot" });
  const list = el("div", { id: "key-list" });
  const page = el("section", { className: "card admin" },
    el("h1", {}, "API keys"),
    el("p", { className: "muted" }, `Keys of the tenant ${session.tenant}. A key is shown once, when it is made; the API keeps only its hash.`),
    form, error, notice, shown, list);
  return { page, form, name, role, error, notice, shown, list };
}

/** A key just made: shown this once, with a copy button; `onDone` hides it. */
export function shownKeyView(created, onDone) {
  const copy = el("button", { type: "button", id: "copy-key" }, "Copy");
  const copied = el("span", { className: "muted", role: "status" });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(created.key);
      copied.textContent = "Copied.";
    } catch {
      copied.textContent = "Select the key and copy it.";
    }
  });
  const done = el("button", { type: "button", id: "key-done" }, "Done");
  done.addEventListener("click", () => onDone());
  return el("section", { id: "key-shown", className: "once" },
    el("p", {}, "The new key ", el("strong", {}, created.name), ` (${created.role}). `,
      el("strong", {}, "Copy it now: it is shown only this once"),
      ", and leaving this page forgets it."),
    el("code", { id: "new-key" }, created.key), " ", copy, " ", done, " ", copied);
}

/** The keys as a table: a revoke button (with a confirmation) on each live key. */
export function keysTable({ keys, tenant, ownId, onRevoke }) {
  if (!keys.length) return el("p", { id: "empty", className: "muted" }, "No keys.");
  const names = keyNames(tenant, keys);
  const rows = keys.map((key) => {
    const own = key.id === ownId;
    const action = key.revoked_at ? "" : confirmButton("Revoke", () => onRevoke(key), {
      warning: own ? "This is the key of your session: revoking it signs you out." : null,
    });
    return el("tr", { "data-id": key.id, className: key.revoked_at ? "revoked" : "" },
      el("td", { className: "name" }, key.name, own ? el("span", { className: "tag own" }, "your session") : null),
      el("td", { className: "role" }, key.role),
      el("td", { className: "created" }, when(key.created_at)),
      el("td", { className: "created-by" }, actorView(key.created_by, names)),
      el("td", { className: "last-used" }, key.last_used_at ? when(key.last_used_at) : "never"),
      el("td", { className: "state" }, key.revoked_at ? `revoked ${when(key.revoked_at)}` : "active"),
      el("td", { className: "actions" }, action));
  });
  return el("table", { id: "keys" },
    el("thead", {}, el("tr", {}, ["Name", "Role", "Created", "Created by", "Last used", "State", ""]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows));
}

/** The session's own key was revoked: the session is over; sign in with another key. */
async function ended(main) {
  try {
    await signOut();
  } catch {
    // the session may already be refused (401): it is over either way
  }
  const top = document.getElementById("top");
  top.hidden = true;
  top.replaceChildren();
  const again = el("button", { type: "button", id: "sign-in-again" }, "Sign in with another key");
  again.addEventListener("click", () => {
    history.replaceState(null, "", location.pathname);
    location.reload();
  });
  show(main, el("section", { id: "session-ended", className: "card" },
    el("h1", {}, "Your key is revoked"),
    el("p", {}, "This session was signed in with the key you revoked, so it has ended."),
    again));
}
