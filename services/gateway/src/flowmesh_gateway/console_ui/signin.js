// Sign-in and the header: each view takes data and callbacks and returns DOM nodes.
import { may } from "./api.js";
import { el } from "./dom.js";

/** The header's links: (href, label, the least role that sees it). */
const NAV = [
  ["#/workflows", "Workflows", "viewer"],
  ["#/runs", "Runs", "viewer"],
  ["#/catalog", "Catalog", "viewer"],
  ["#/connectors", "Connectors", "viewer"],
  ["#/admin/keys", "Keys", "admin"],
  ["#/admin/secrets", "Secrets", "admin"],
  ["#/admin/audit", "Audit", "admin"],
];

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
    el("nav", {}, NAV.filter(([, , role]) => may(session, role))
      .map(([href, label]) => el("a", { href }, label))),
    el("span", { className: "who" },
      el("span", { id: "tenant" }, session.tenant), " · ",
      el("span", { id: "role" }, session.role)),
    button,
  ];
}
