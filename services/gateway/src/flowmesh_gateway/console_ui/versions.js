// A workflow's version history (newest first, pages from the server) and a line diff of two
// versions' YAML exports.
import { query, request } from "./api.js";
import { button, el, show, when } from "./dom.js";
import { diffLines, diffSummary, foldUnchanged } from "./diff.js";

const YAML = "application/yaml";
export const PAGE_SIZE = 20;

function exportOf(id, version) {
  return request("GET", `/workflows/${encodeURIComponent(id)}/export${query({ format: "yaml", version })}`,
    undefined, { accept: YAML, text: true });
}

/** The history: a row per version, two columns of radio buttons to pick a diff's sides. */
export function versionsView({ id, current, guarded }) {
  const rows = el("tbody");
  const more = el("button", { type: "button", id: "more-versions", hidden: true }, "More versions");
  const diff = el("div", { id: "diff", className: "diff", hidden: true });
  let cursor = null;
  let shown = 0;

  const row = (v) => {
    shown += 1;
    const pick = (side) => el("input", {
      type: "radio", name: `diff-${side}`, value: v.version, "aria-label": `${side} version ${v.version}`,
      // Newest against the one before it, unless the reader picks others.
      checked: (side === "to" && shown === 1) || (side === "from" && shown === 2),
    });
    return el("tr", { "data-version": v.version },
      el("td", { className: "version" },
        el("a", { href: `#/workflows/${encodeURIComponent(id)}?version=${v.version}` }, `v${v.version}`),
        v.version === current ? el("span", { className: "muted" }, " (current)") : null),
      el("td", { className: "created" }, when(v.created_at)),
      el("td", { className: "by" }, v.created_by || ""),
      el("td", { className: "validation" }, v.validation_status || ""),
      el("td", {}, pick("from")), el("td", {}, pick("to")));
  };

  const load = () => guarded(async () => {
    const page = await request("GET", `/workflows/${encodeURIComponent(id)}/versions${query({ limit: PAGE_SIZE, cursor })}`);
    rows.append(...page.items.map(row));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  });
  more.addEventListener("click", load);

  const picked = (side) => {
    const checked = rows.querySelector(`input[name="diff-${side}"]:checked`);
    return checked ? Number(checked.value) : null;
  };
  const compare = button("Compare", async () => {
    const from = picked("from");
    const to = picked("to");
    diff.hidden = false;
    if (from === null || to === null) {
      show(diff, el("p", { className: "muted" }, "Pick two versions."));
      return;
    }
    try {
      const [a, b] = await Promise.all([exportOf(id, from), exportOf(id, to)]);
      show(diff, diffView(from, to, diffLines(a, b)));
    } catch (error) {
      show(diff, el("p", { className: "error", role: "alert" }, error.message));
    }
  }, { id: "compare" });

  load();
  return el("div", { id: "versions-part" },
    el("table", { id: "versions" },
      el("thead", {}, el("tr", {}, ["Version", "Created", "By", "Validation", "From", "To"]
        .map((h) => el("th", { scope: "col" }, h)))),
      rows),
    el("div", { className: "actions" }, more, compare),
    diff);
}

/** The diff as lines marked +, - or blank, with the old and new line numbers; unchanged
 * runs away from a change are folded into a button that unfolds them. */
export function diffView(from, to, ops) {
  const counts = diffSummary(ops);
  const line = ({ op, text, left, right }) => el("div", { className: `diff-line diff-${op}`, "data-op": op },
    el("span", { className: "diff-number" }, left ? String(left) : ""),
    el("span", { className: "diff-number" }, right ? String(right) : ""),
    el("span", { className: "diff-sign" }, op === "add" ? "+" : op === "del" ? "-" : " "),
    el("span", { className: "diff-text" }, text));
  const entry = (item) => {
    if (item.op !== "skip") return line(item);
    const fold = el("button", { type: "button", className: "diff-fold link" },
      `… ${item.lines.length} unchanged line(s)`);
    fold.addEventListener("click", () => fold.replaceWith(...item.lines.map(line)));
    return fold;
  };
  return [
    el("p", { id: "diff-summary", className: "muted" },
      counts.add || counts.del
        ? `v${from} → v${to}: ${counts.add} line(s) added, ${counts.del} removed.`
        : `v${from} and v${to} have the same content.`),
    el("div", { className: "diff-lines" }, foldUnchanged(ops).map(entry)),
  ];
}
