// A node made from a catalog entry: its id, the parameters form (form.js, from the entry's
// `parameters_schema`, prefilled from its `example`), and the node as one line of YAML
// (`- {"id": ..., "type": ..., "parameters": {...}}`, a JSON flow mapping) with Copy, and
// Insert when the caller gives `onInsert`. Also the catalog's reading: entries and
// connectors.
import { ApiError, query, request } from "./api.js";
import { el } from "./dom.js";
import { buildForm } from "./form.js";
import { flowText } from "./schema.js";

/** The node a form value makes: an action is `type: action` with the value as its
 * parameters (they name the action); a node type is the entry's name. */
export function nodeOf(entry, id, parameters) {
  return { id, type: entry.kind === "action" ? "action" : entry.name, parameters };
}

/** The node as a line of a workflow's `nodes` list. */
export function nodeLine(entry, id, parameters) {
  return `- ${flowText(nodeOf(entry, id, parameters))}`;
}

/** A node id from an entry's name (`slack.post_message` -> `slack_post_message`). */
export function defaultId(name) {
  const id = name.toLowerCase().replace(/[^a-z0-9_]+/g, "_").replace(/^[^a-z]+/, "");
  return (id || "node").slice(0, 63);
}

/** Every catalog entry of a kind (or all), reading the pages of GET /catalog. */
export async function catalogEntries(filters = {}) {
  const found = [];
  let cursor = null;
  do {
    const page = await request("GET", `/catalog${query({ ...filters, limit: 100, cursor })}`);
    found.push(...page.items);
    cursor = page.has_more ? page.next_cursor : null;
  } while (cursor);
  return found;
}

/** One entry by kind and name; a 404 ApiError when there is none. */
export async function catalogEntry(kind, name) {
  if (!["node", "action"].includes(kind)) throw new ApiError(404, null);
  const found = (await catalogEntries({ kind })).find((entry) => entry.name === name);
  if (!found) throw new ApiError(404, null);
  return found;
}

/** The tenant's connector names for a `connector` field (none when they cannot be read). */
export async function connectorNames() {
  try {
    return (await request("GET", "/connectors?limit=100")).items.map((c) => c.name);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw error;
    return [];
  }
}

/** The builder: {node}; `onInsert(line)` (or null) puts the node's line in an editor. */
export function nodeBuilder({ entry, connectors, onInsert = null }) {
  const id = el("input", { id: "node-id", type: "text", autocomplete: "off", spellcheck: "false", value: defaultId(entry.name) });
  const form = buildForm(entry.parameters_schema, entry.example, { connectors, idPrefix: "param" });
  const text = el("code", { id: "node-text" });
  const state = el("p", { id: "node-problems", className: "error", role: "alert", hidden: true });
  const copied = el("span", { className: "muted", role: "status" });
  let line = "";
  const update = () => {
    const { value, problems } = form.read();
    form.showProblems(problems);
    line = nodeLine(entry, id.value.trim(), value);
    text.textContent = line;
    state.hidden = !problems.length;
    state.textContent = problems.length ? `${problems.length} problem(s) in the form: the line shows the rest.` : "";
    copied.textContent = "";
  };
  const copy = el("button", { type: "button", id: "copy-node" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(line);
      copied.textContent = "Copied.";
    } catch {
      copied.textContent = "Select the line and copy it.";
    }
  });
  const insert = onInsert ? el("button", { type: "button", id: "insert-node" }, "Insert") : null;
  if (insert) insert.addEventListener("click", () => onInsert(line));
  for (const source of [form.node, id]) {
    source.addEventListener("input", update);
    source.addEventListener("change", update);
  }
  update();
  return {
    node: el("div", { className: "node-builder" },
      el("div", { className: "field" }, el("label", { for: "node-id" }, "Node id"), id),
      el("h3", {}, "Parameters"), form.node,
      el("h3", {}, "The node"),
      el("p", { className: "muted" }, "One line of YAML: put it under the workflow's nodes:."),
      el("pre", { className: "node-line" }, text), state,
      el("div", { className: "actions" }, copy, insert, copied)),
  };
}
