// #/import: a workflow document (typed, pasted or read from a local file) sent to
// POST /workflows/import; its problems are shown at their lines, as in the editor.
import { may, request } from "./api.js";
import { button, el, show } from "./dom.js";
import { editorView } from "./editor.js";
import { formatOf } from "./lines.js";
import { TYPES, checkButton, showFailure } from "./workflow.js";

/** The largest file read into the page: the API refuses bodies over 1 MiB anyway. */
export const MAX_FILE_BYTES = 1024 * 1024;

/** The page at #/import. */
export async function render({ session, main, navigate }) {
  if (!may(session, "editor")) {
    show(main, el("section", { id: "import", className: "card" },
      el("h1", {}, "Import a workflow"),
      el("p", { id: "import-refused", className: "muted" }, "Your role cannot import workflows.")));
    return;
  }
  const editor = editorView({ id: "import-text", label: "Workflow document (YAML or JSON)" });
  const status = el("p", { id: "import-status", role: "status" });
  const say = (message, kind = "muted") => {
    status.className = kind;
    show(status, message);
  };
  const file = el("input", {
    type: "file", id: "import-file", accept: ".yaml,.yml,.json,application/json,application/yaml",
  });
  file.addEventListener("change", async () => {
    const [chosen] = file.files;
    if (!chosen) return;
    if (chosen.size > MAX_FILE_BYTES) {
      say(`${chosen.name} is larger than ${MAX_FILE_BYTES} bytes.`, "error");
      return;
    }
    editor.setText(await chosen.text());
    say(`Read ${chosen.name}.`);
  });
  const send = button("Import", async () => {
    const text = editor.text();
    try {
      const created = await request("POST", "/workflows/import", text, { contentType: TYPES[formatOf(text)] });
      navigate(`/workflows/${created.id}`);
    } catch (error) {
      showFailure(error, editor, say);
    }
  }, { id: "import-button" });
  show(main, el("section", { id: "import", className: "card" },
    el("h1", {}, "Import a workflow"),
    el("p", { className: "muted" },
      "A workflow document as export writes it: YAML, or JSON (a document starting with {)."),
    el("label", { for: "import-file" }, "Read a file: "), file,
    editor.node,
    el("div", { className: "actions" }, checkButton(editor, say), send),
    status));
}
