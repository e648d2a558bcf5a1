// A line diff of two documents (two versions of a workflow's YAML): pure, no DOM.

/**
 * The most cells of the LCS table (lines of a times lines of b, once the common head and
 * tail are set aside). Past it the differing middle is shown as deleted then added: still
 * a true diff, only not the shortest, and the page stays responsive.
 */
export const MAX_CELLS = 4_000_000;

/** The lines of a text: "" is no line, and a final newline ends the last line. */
export function linesOf(text) {
  if (!text) return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/**
 * diffLines("a\nb\n", "a\nc\n") -> [{op: "same", text: "a"}, {op: "del", text: "b"},
 * {op: "add", text: "c"}]: every line of `a` is "same" or "del", every line of `b` "same"
 * or "add", in order; within a change, deletions come before additions.
 */
export function diffLines(a, b, { maxCells = MAX_CELLS } = {}) {
  const left = linesOf(a);
  const right = linesOf(b);
  let head = 0;
  while (head < left.length && head < right.length && left[head] === right[head]) head += 1;
  let tail = 0;
  while (tail < left.length - head && tail < right.length - head
    && left[left.length - 1 - tail] === right[right.length - 1 - tail]) tail += 1;
  const x = left.slice(head, left.length - tail);
  const y = right.slice(head, right.length - tail);
  const middle = x.length * y.length > maxCells ? blocks(x, y) : lcs(x, y);
  return [
    ...left.slice(0, head).map((text) => ({ op: "same", text })),
    ...middle,
    ...left.slice(left.length - tail).map((text) => ({ op: "same", text })),
  ];
}

function blocks(x, y) {
  return [...x.map((text) => ({ op: "del", text })), ...y.map((text) => ({ op: "add", text }))];
}

/** The classic longest-common-subsequence table, walked from the start. */
function lcs(x, y) {
  const n = x.length;
  const m = y.length;
  if (n === 0 || m === 0) return blocks(x, y);
  const width = m + 1;
  // longest[i * width + j]: the LCS length of x[i..] and y[j..].
  const longest = new Uint32Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      longest[i * width + j] = x[i] === y[j]
        ? longest[(i + 1) * width + j + 1] + 1
        : Math.max(longest[(i + 1) * width + j], longest[i * width + j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      out.push({ op: "same", text: x[i] });
      i += 1;
      j += 1;
    } else if (longest[(i + 1) * width + j] >= longest[i * width + j + 1]) {
      out.push({ op: "del", text: x[i] });
      i += 1;
    } else {
      out.push({ op: "add", text: y[j] });
      j += 1;
    }
  }
  while (i < n) out.push({ op: "del", text: x[i++] });
  while (j < m) out.push({ op: "add", text: y[j++] });
  return out;
}

/** How many lines each kind: {same, add, del}. */
export function diffSummary(ops) {
  const counts = { same: 0, add: 0, del: 0 };
  for (const { op } of ops) counts[op] += 1;
  return counts;
}
