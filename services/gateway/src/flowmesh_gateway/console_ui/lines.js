// A document as lines, and where a problem of the API is in it: pure, no DOM.
//
// The API's problems name a JSON path (`nodes[2].parameters.url`) and, for a YAML body, a
// line and column (1-based). A problem without a line is looked for by its path in a
// block-style YAML document (what export writes); one found nowhere has no line.

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

/** The lines of a YAML text as {indent, text}; blank and comment lines are null. */
function shapes(source) {
  return source.split("\n").map((line) => {
    const text = line.trimStart();
    if (text === "" || text.startsWith("#") || text === "---") return null;
    return { indent: line.length - text.length, text };
  });
}

function keyOf(text) {
  const match = /^("(?:[^"\\]|\\.)*"|'[^']*'|[^\s"'#][^:#]*?)\s*:(?:\s|$)/.exec(text);
  if (!match) return null;
  const key = match[1];
  return /^["']/.test(key) ? key.slice(1, -1) : key;
}

function isItem(text) {
  return text === "-" || text.startsWith("- ");
}

/**
 * The line (1-based) of a path in a block-style YAML text, or of the deepest part of it that
 * was found (a missing field points at its parent); null when not even the first part is.
 */
export function locate(source, path) {
  const parts = parsePath(path);
  if (!parts.length || typeof source !== "string") return null;
  const lines = shapes(source);
  let from = 0;
  let to = lines.length;
  let found = null;
  for (const part of parts) {
    const within = [];
    for (let i = from; i < to; i += 1) if (lines[i]) within.push(i);
    if (!within.length) break;
    const indent = Math.min(...within.map((i) => lines[i].indent));
    const level = within.filter((i) => lines[i].indent === indent);
    let at = null;
    if (typeof part === "number") {
      const items = level.filter((i) => isItem(lines[i].text));
      if (part < items.length) at = items[part];
      if (at === null) break;
      // The item's content: its first line without the dash, and what is indented under it.
      const rest = lines[at].text.slice(1).trimStart();
      const next = items[part + 1] ?? to;
      if (rest) lines[at] = { indent: lines[at].indent + lines[at].text.length - rest.length, text: rest };
      else lines[at] = null;
      found = at;
      from = rest ? at : at + 1;
      to = next;
      continue;
    }
    at = level.find((i) => keyOf(lines[i].text) === part) ?? null;
    if (at === null) break;
    found = at;
    const { indent: own } = lines[at];
    let end = at + 1;
    while (end < to && (!lines[end] || lines[end].indent > own
      || (lines[end].indent === own && isItem(lines[end].text)))) end += 1;
    from = at + 1;
    to = end;
  }
  return found === null ? null : found + 1;
}

/**
 * Problems placed in a text: {byLine: [[line, [problem...]]...] by line, unplaced: [...]}.
 * A problem's own `line` wins when it is within the text; else its path is looked for
 * (`guessed` on the problem then); else it is unplaced.
 */
export function placeProblems(problems, source) {
  const total = lineCount(source);
  const byLine = new Map();
  const unplaced = [];
  for (const problem of problems || []) {
    let line = Number.isInteger(problem.line) && problem.line >= 1 && problem.line <= total
      ? problem.line : null;
    let guessed = false;
    if (line === null) {
      line = locate(source, problem.path);
      guessed = line !== null;
    }
    if (line === null) unplaced.push(problem);
    else {
      if (!byLine.has(line)) byLine.set(line, []);
      byLine.get(line).push({ ...problem, line, guessed });
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
