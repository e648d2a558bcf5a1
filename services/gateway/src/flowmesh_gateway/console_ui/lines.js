// A document as lines, and where a problem of the API is in it: pure, no DOM.
//
// The API's problems name a JSON path (`nodes[2].parameters.url`) and, for a document sent
// as text, a line and column (1-based): the registry is the one that knows where a path is
// written (flowmesh_registry.locations); a problem without a line is listed by its path.

/** The offset at which each line starts (line 1 at index 0). */
export function lineStarts(text) {
  const starts = [0];
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  return starts;
}

/** How many lines the editor shows (an empty text is one empty line). */
export function lineCount(text) {
  return lineStarts(text).length;
}

/** [start, end) offsets of line `line` (1-based, clamped into the text). */
export function lineRange(text, line) {
  const starts = lineStarts(text);
  const index = Math.min(Math.max(1, Math.trunc(line) || 1), starts.length) - 1;
  const end = index + 1 < starts.length ? starts[index + 1] - 1 : text.length;
  return [starts[index], end];
}

/** The line (1-based) of an offset. */
export function lineAt(text, offset) {
  let line = 1;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) line += 1;
  return line;
}

/** `nodes[2].parameters["a.b"]` -> ["nodes", 2, "parameters", "a.b"]; `$` -> []. */
export function parsePath(path) {
  const parts = [];
  const text = String(path ?? "").replace(/^\$\.?/, "");
  const pattern = /\[(\d+)\]|\[("(?:[^"\\]|\\.)*"|'[^']*')\]|\.?([^.[\]]+)/g;
  for (const match of text.matchAll(pattern)) {
    if (match[1] !== undefined) parts.push(Number(match[1]));
    else if (match[2] !== undefined) parts.push(match[2].slice(1, -1));
    else parts.push(match[3]);
  }
  return parts;
}

/**
 * Problems placed in a text: {byLine: [[line, [problem...]]...] by line, unplaced: [...]}.
 * A problem is placed at its own `line` when that is within the text; else it is unplaced.
 */
export function placeProblems(problems, source) {
  const total = lineCount(source);
  const byLine = new Map();
  const unplaced = [];
  for (const problem of problems || []) {
    const { line } = problem;
    if (!(Number.isInteger(line) && line >= 1 && line <= total)) unplaced.push(problem);
    else {
      if (!byLine.has(line)) byLine.set(line, []);
      byLine.get(line).push(problem);
    }
  }
  return { byLine: [...byLine.entries()].sort((a, b) => a[0] - b[0]), unplaced };
}

/** "line 7: message (path)": what the list of problems says of one. */
export function problemText(problem) {
  const where = problem.line ? `line ${problem.line}${problem.column ? `:${problem.column}` : ""}: ` : "";
  const path = problem.path && problem.path !== "$" ? ` (${problem.path})` : "";
  return `${where}${problem.message || problem.code || "a problem"}${path}`;
}

/** The format of a document to import, by its first character: JSON objects start with `{`. */
export function formatOf(text) {
  return String(text).trimStart().startsWith("{") ? "json" : "yaml";
}

/**
 * Put `line` in `text` at the caret's line, with that line's indentation: an empty (or
 * blank) line is filled, a line with text gets it above. -> {text, start, end}, the new
 * text and where the line put is.
 */
export function insertLine(text, caret, line) {
  const at = Math.min(Math.max(0, caret), text.length);
  const start = text.lastIndexOf("\n", at - 1) + 1;
  const found = text.indexOf("\n", at);
  const end = found === -1 ? text.length : found;
  const current = text.slice(start, end);
  const placed = current.match(/^[ \t]*/)[0] + line;
  const after = current.trim() === "" ? text.slice(end) : `\n${text.slice(start)}`;
  return { text: text.slice(0, start) + placed + after, start, end: start + placed.length };
}
