// "Add node" in the workflow editor (editors and up): pick a catalog entry, fill its form
// (nodebuilder.js), and Insert puts the node's line at the caret's line, with its
// indentation; Check then shows any problem at its line.
import { el, show } from "./dom.js";
import { catalogEntries, connectorNames, nodeBuilder } from "./nodebuilder.js";

/** The button and the picker's panel, for `editor` (editor.js). */
export function nodePicker(editor, guarded) {
  const open = el("button", { type: "button", id: "add-node" }, "Add node");
  const panel = el("div", { id: "node-picker", className: "node-picker", hidden: true });
  let loaded = false;
  open.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    if (!panel.hidden && !loaded) {
      loaded = true;
      guarded(async () => show(panel, ...await pickerView(editor)));
    }
  });
  return { button: open, panel };
}

async function pickerView(editor) {
  const [entries, connectors] = await Promise.all([catalogEntries(), connectorNames()]);
  const choose = el("select", { id: "picker-entry" },
    el("option", { value: "" }, "Choose a node type or action"),
    entries.map((entry, i) => el("option", { value: String(i) }, `${entry.name} (${entry.kind}, ${entry.category})`)));
  const slot = el("div", { id: "picker-builder" });
  const said = el("p", { id: "picker-status", className: "muted", role: "status" });
  choose.addEventListener("change", () => {
    said.textContent = "";
    if (choose.value === "") return show(slot);
    const entry = entries[Number(choose.value)];
    return show(slot, el("p", { className: "muted" }, entry.description), nodeBuilder({
      entry,
      connectors,
      onInsert: (line) => {
        editor.insert(line);
        said.textContent = "Inserted at the caret's line: Check to see it validated.";
      },
    }).node);
  });
  return [
    el("h3", {}, "Add a node"),
    el("p", { className: "muted" }, "Put the caret on an empty line under nodes: (or on a node's first line, to go above it), then Insert."),
    el("label", { for: "picker-entry" }, "Type"), " ", choose, slot, said,
  ];
}
