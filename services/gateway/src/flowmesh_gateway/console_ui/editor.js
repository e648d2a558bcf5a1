// A text editor for a workflow document: a textarea with a line-number gutter, and the API's
// problems shown at their lines (the gutter's number marked, and a list of
// "line N: message (path)" items, each moving the caret to its line). Problems without a
// line are listed above the text, with their path.
import { el, show } from "./dom.js";
import { insertLine, lineCount, lineRange, placeProblems, problemText } from "./lines.js";

/**
 * editorView({id, text, readOnly, label}) -> {node, textarea, text(), setText(t),
 * setProblems(problems), goTo(line), insert(line)}; `insert` puts a line at the caret's line
 * (lines.js insertLine) and selects it.
 */
export function editorView({ id, text = "", readOnly = false, label = "Definition (YAML)" }) {
  const textarea = el("textarea", {
    id, className: "editor-text", spellcheck: "false", wrap: "off", autocomplete: "off",
    "aria-label": label, readonly: readOnly,
  });
  textarea.value = text;
  const gutter = el("div", { className: "editor-gutter", "aria-hidden": "true" });
  const unplaced = el("ul", { className: "problems problems-unplaced", hidden: true });
  const placed = el("ul", { className: "problems problems-placed", hidden: true });
  // Under the (transparent) textarea, a band across each line that has a problem.
  const bands = el("div", { className: "editor-bands" });
  const area = el("div", { className: "editor-area" },
    el("div", { className: "editor-marks", "aria-hidden": "true" }, bands), textarea);
  const body = el("div", { className: "editor-body" }, gutter, area);
  const node = el("div", { className: "editor" }, unplaced, body, placed);
  let shownLines = 0;
  const lineHeight = () => Number.parseFloat(getComputedStyle(textarea).lineHeight) || 18;
  const follow = () => {
    gutter.scrollTop = textarea.scrollTop;
    bands.style.transform = `translate(${-textarea.scrollLeft}px, ${-textarea.scrollTop}px)`;
  };
  let marks = new Map();  // line -> its problems' messages

  // The gutter changes only where it must: typing Enter in a 100,000-line document adds one
  // number (redrawing them all took 4.6 s a keystroke), and new problems re-mark only the
  // lines that had or have one.
  const marked = new Set();  // the gutter lines drawn as having a problem
  const mark = (number, line) => {
    const problems = marks.get(line);
    number.className = problems ? "gutter-line has-problem" : "gutter-line";
    if (problems) {
      number.setAttribute("title", problems.join("\n"));
      marked.add(line);
    } else {
      number.removeAttribute("title");
      marked.delete(line);
    }
  };
  const drawGutter = () => {
    const total = lineCount(textarea.value);
    const dirty = Boolean(gutter.dataset.dirty);
    if (total === shownLines && !dirty) return;
    delete gutter.dataset.dirty;
    if (total > shownLines) {
      const added = document.createDocumentFragment();
      for (let line = shownLines + 1; line <= total; line += 1) {
        const number = el("div", { "data-number": line }, String(line));
        mark(number, line);
        added.append(number);
      }
      gutter.append(added);
    }
    for (let line = shownLines; line > total; line -= 1) {
      gutter.lastElementChild.remove();
      marked.delete(line);
    }
    shownLines = total;
    if (dirty) {
      for (const line of new Set([...marked, ...marks.keys()])) {
        if (line <= total) mark(gutter.children[line - 1], line);
      }
      const height = lineHeight();
      show(bands, [...marks.keys()].map((line) => {
        const band = el("div", { className: "line-band", "data-band": line });
        band.style.top = `${(line - 1) * height}px`;
        band.style.height = `${height}px`;
        return band;
      }));
    }
    follow();
  };

  const goTo = (line) => {
    const [start, end] = lineRange(textarea.value, line);
    textarea.focus();
    textarea.setSelectionRange(start, end);
    textarea.scrollTop = Math.max(0, (line - 1) * lineHeight() - textarea.clientHeight / 3);
    follow();
  };

  const item = (problem) => {
    const attributes = { className: "problem", "data-path": problem.path || "$", "data-code": problem.code || "" };
    if (!problem.line) return el("li", attributes, problemText(problem));
    const link = el("button", { type: "button", className: "link" }, problemText(problem));
    link.addEventListener("click", () => goTo(problem.line));
    return el("li", { ...attributes, "data-line": problem.line }, link);
  };

  const setProblems = (problems) => {
    const found = placeProblems(problems, textarea.value);
    marks = new Map(found.byLine.map(([line, list]) => [line, list.map((p) => p.message || p.code)]));
    show(unplaced, found.unplaced.map(item));
    show(placed, found.byLine.flatMap(([, list]) => list.map(item)));
    unplaced.hidden = !found.unplaced.length;
    placed.hidden = !found.byLine.length;
    gutter.dataset.dirty = "1";
    drawGutter();
  };

  textarea.addEventListener("input", drawGutter);
  textarea.addEventListener("scroll", follow);
  drawGutter();
  return {
    node,
    textarea,
    text: () => textarea.value,
    setText: (value) => {
      textarea.value = value;
      setProblems([]);
    },
    setProblems,
    goTo,
    insert: (line) => {
      const placed = insertLine(textarea.value, textarea.selectionStart, line);
      textarea.value = placed.text;
      setProblems([]);
      textarea.focus();
      textarea.setSelectionRange(placed.start, placed.end);
    },
  };
}
