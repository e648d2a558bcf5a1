// A workflow's page, #/workflows/<id> (or ?version=N for an old version): its header, its
// DAG, its YAML in an editor (Check, Save), enable/disable, Run, and its version history
// with a diff (versions.js).
import { ApiError, may, query, request } from "./api.js";
import { drawDag, graphOf } from "./dag.js";
import { button, el, show } from "./dom.js";
import { editorView } from "./editor.js";
import { formatOf } from "./lines.js";
import { nodePicker } from "./nodepicker.js";
import { versionsView } from "./versions.js";

const YAML = "application/yaml";
/** The content type of a document by its format (lines.js formatOf). */
export const TYPES = { json: "application/json", yaml: YAML };

/** The workflow (current, or as it was at `version`) and its ETag. */
export async function loadWorkflow(id, version) {
  let etag = null;
  const workflow = await request("GET", `/workflows/${encodeURIComponent(id)}${query({ version })}`, undefined, {
    onHeaders: (headers) => {
      etag = headers.get("ETag");
    },
  });
  return { workflow, etag };
}

/** A version's YAML document, as export writes it. */
export function exportYaml(id, version) {
  return request("GET", `/workflows/${encodeURIComponent(id)}/export${query({ format: "yaml", version })}`,
    undefined, { accept: YAML, text: true });
}

/** The page at #/workflows/<id>[?version=N]. */
export async function render({ session, main, params, values, guarded, navigate, isCurrent }) {
  const id = values.id;
  const asked = Number.parseInt(params.get("version") || "", 10);
  const version = asked >= 1 ? asked : undefined;
  const [{ workflow, etag }, yaml] = await Promise.all([loadWorkflow(id, version), exportYaml(id, version)]);
  if (!isCurrent()) return;
  const old = version !== undefined;  // a version asked for by number is only read
  const state = { workflow, etag };
  const header = el("div", { className: "workflow-header" });
  const drawHeader = () => show(header, headerView(session, state.workflow, old, async (enabled) => {
    const changed = await request("PATCH", `/workflows/${encodeURIComponent(id)}`, { enabled }, {
      onHeaders: (headers) => {
        state.etag = headers.get("ETag") || state.etag;
      },
    });
    state.workflow = { ...state.workflow, enabled: changed.enabled, version: changed.version };
    drawHeader();
  }));
  drawHeader();
  const reload = () => navigate(`/workflows/${id}`);
  show(main, el("section", { id: "workflow", className: "card" },
    header,
    old ? el("p", { id: "old-version", className: "notice" },
      `You are reading version ${version}: it cannot be changed here. `,
      el("a", { href: `#/workflows/${encodeURIComponent(id)}` }, "See the current version")) : null,
    el("h2", {}, "Graph"),
    el("div", { id: "dag", className: "dag-frame" }, drawDag(graphOf(workflow))),
    el("h2", {}, "Definition"),
    definitionView({ session, id, yaml, state, old, reload, guarded }),
    may(session, "operator") && !old ? runView(id, navigate) : null,
    el("h2", {}, "Versions"),
    versionsView({ id, current: workflow.version, guarded })));
}

/** Name, version, enabled state, tags, description; the toggle for editors. */
export function headerView(session, workflow, old, onToggle) {
  const toggle = may(session, "editor") && !old
    ? button(workflow.enabled ? "Disable" : "Enable", async () => {
      try {
        await onToggle(!workflow.enabled);
      } catch (error) {
        toggle.after(el("p", { className: "error", role: "alert" }, error.message));
      }
    }, { id: "toggle" })
    : null;
  return [
    el("h1", { id: "wf-name" }, workflow.name),
    el("p", { className: "workflow-facts" },
      el("span", { id: "wf-version" }, `v${workflow.version}`),
      el("span", { id: "wf-enabled", className: workflow.enabled ? "enabled" : "disabled" },
        workflow.enabled ? "enabled" : "disabled"),
      el("span", { id: "wf-validation", className: "muted" }, workflow.validation_status || ""),
      el("span", { id: "wf-tags" }, (workflow.tags || []).map((t) => el("span", { className: "tag" }, t))),
      el("a", { id: "wf-runs", href: `#/runs?workflow_id=${encodeURIComponent(workflow.id)}` }, "Runs"),
      toggle),
    workflow.description ? el("p", { id: "wf-description" }, workflow.description) : null,
  ];
}

/** The YAML editor: Check for everyone, Save for editors (a new version, If-Match). */
function definitionView({ session, id, yaml, state, old, reload, guarded }) {
  const editor = editorView({ id: "yaml", text: yaml, readOnly: old || !may(session, "editor") });
  // A stored version that is invalid (a sub-workflow or secret it names went away): its
  // problems as stored (paths), then placed at their lines by validating the text.
  const stored = state.workflow.validation_errors || [];
  editor.setProblems(stored);
  if (stored.length) placeStored(editor, stored);
  const status = el("p", { id: "editor-status", role: "status" });
  const say = (message, kind = "muted") => {
    status.className = kind;
    show(status, message);
  };
  const check = checkButton(editor, say);
  const save = may(session, "editor") && !old ? button("Save", async () => {
    try {
      const saved = await request("PUT", `/workflows/${encodeURIComponent(id)}`, editor.text(), {
        contentType: YAML, headers: state.etag ? { "If-Match": state.etag } : {},
      });
      editor.setProblems([]);
      say(`Saved as version ${saved.version}.`, "ok");
      reload();
    } catch (error) {
      if (error instanceof ApiError && error.status === 412) {
        const again = el("button", { type: "button", id: "reload", className: "link" }, "reload");
        again.addEventListener("click", reload);
        say(["This workflow was changed by someone else since you opened it: ", again,
          " to see the new version (your text here is not saved)."], "error");
      } else showFailure(error, editor, say);
    }
  }, { id: "save" }) : null;
  const picker = may(session, "editor") && !old ? nodePicker(editor, guarded) : null;
  return el("div", { className: "definition" }, editor.node,
    el("div", { className: "actions" }, check, save, picker && picker.button), status,
    picker && picker.panel);
}

/** The stored problems at their lines: the same text validated now (the registry places
 * them); when the answer has none of them (the world changed since), the stored stay. */
async function placeStored(editor, stored) {
  const text = editor.text();
  try {
    const answer = await request("POST", "/workflows/validate", text, { contentType: TYPES[formatOf(text)] });
    if ((answer.errors || []).length && editor.text() === text) editor.setProblems(answer.errors);
  } catch {
    // the stored problems, listed by their paths, are still shown
  }
}

/** Check: the editor's text to POST /workflows/validate, its problems at their lines. */
export function checkButton(editor, say) {
  return button("Check", async () => {
    const text = editor.text();
    try {
      const answer = await request("POST", "/workflows/validate", text, { contentType: TYPES[formatOf(text)] });
      editor.setProblems(answer.errors || []);
      say(answer.valid ? "No problems found." : `${answer.errors.length} problem(s).`,
        answer.valid ? "ok" : "error");
    } catch (error) {
      showFailure(error, editor, say);
    }
  }, { id: "check" });
}

/** A refused document: its problems at their lines, or the API's message. */
export function showFailure(error, editor, say) {
  if (!(error instanceof ApiError)) throw error;
  if (error.status === 401) throw error;
  editor.setProblems(error.errors);
  say(error.message, "error");
}

/** Run: a JSON input, then the run's page. */
function runView(id, navigate) {
  const input = el("textarea", { id: "run-input", className: "run-input", spellcheck: "false", rows: 3,
    "aria-label": "Run input (JSON)" });
  input.value = "{}";
  const error = el("p", { id: "run-error", className: "error", role: "alert", hidden: true });
  const fail = (message) => {
    error.hidden = false;
    show(error, message);
  };
  const run = button("Run", async () => {
    let value;
    try {
      value = input.value.trim() === "" ? {} : JSON.parse(input.value);
    } catch (problem) {
      fail(`The input is not JSON: ${problem.message}`);
      return;
    }
    try {
      const started = await request("POST", `/workflows/${encodeURIComponent(id)}/execute`, { input: value });
      navigate(`/runs/${started.run_id}`);
    } catch (problem) {
      if (!(problem instanceof ApiError) || problem.status === 401) throw problem;
      fail(problem.message);
    }
  }, { id: "run" });
  return el("div", { id: "run-form" }, el("h2", {}, "Run"),
    el("label", { for: "run-input" }, "Input (JSON)"), input, el("div", { className: "actions" }, run), error);
}
