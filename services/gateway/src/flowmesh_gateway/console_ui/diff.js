// A line diff of two documents (two versions of a workflow's YAML): pure, no DOM.

/**
 * The most lines added plus removed that the shortest diff is looked for with (Myers's
 * algorithm: time in (lines of a + lines of b) times edits, memory in edits squared). Past
 * it the differing middle is shown as removed then added: still a true diff, only not the
 * shortest, and the page stays responsive.
 */
export const MAX_EDITS = 2000;

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
export function diffLines(a, b, { maxEdits = MAX_EDITS } = {}) {
  const left = linesOf(a);
  const right = linesOf(b);
  let head = 0;
  while (head < left.length && head < right.length && left[head] === right[head]) head += 1;
  let tail = 0;
  while (tail < left.length - head && tail < right.length - head
    && left[left.length - 1 - tail] === right[right.length - 1 - tail]) tail += 1;
  const x = left.slice(head, left.length - tail);
  const y = right.slice(head, right.length - tail);
  const middle = myers(x, y, maxEdits) ?? blocks(x, y);
  return [
    ...left.slice(0, head).map((text) => ({ op: "same", text })),
    ...middle,
    ...left.slice(left.length - tail).map((text) => ({ op: "same", text })),
  ];
}

function blocks(x, y) {
  return [...x.map((text) => ({ op: "del", text })), ...y.map((text) => ({ op: "add", text }))];
}

/** The shortest edit script of x into y (Myers 1986), or null past `maxEdits` edits. */
function myers(x, y, maxEdits) {
  const n = x.length;
  const m = y.length;
  const max = n + m;
  const v = new Int32Array(2 * max + 3);  // v[k + max + 1]: the furthest x on diagonal k
  const trace = [];  // before step d, v over the diagonals -(d+1)..d+1
  for (let d = 0; d <= Math.min(max, maxEdits); d += 1) {
    trace.push(v.slice(max - d, max + d + 3));
    for (let k = -d; k <= d; k += 2) {
      const at = k + max + 1;
      let i = k === -d || (k !== d && v[at - 1] < v[at + 1]) ? v[at + 1] : v[at - 1] + 1;
      let j = i - k;
      while (i < n && j < m && x[i] === y[j]) {
        i += 1;
        j += 1;
      }
      v[at] = i;
      if (i >= n && j >= m) return walkBack(x, y, trace);
    }
  }
  return null;
}

function walkBack(x, y, trace) {
  const out = [];
  let i = x.length;
  let j = y.length;
  for (let d = trace.length - 1; d >= 0; d -= 1) {
    const before = trace[d];
    const get = (k) => before[k + d + 1];
    const k = i - j;
    const down = k === -d || (k !== d && get(k - 1) < get(k + 1));
    const previousK = down ? k + 1 : k - 1;
    const previousI = get(previousK);
    const previousJ = previousI - previousK;
    while (i > previousI && j > previousJ && i > 0 && j > 0) {
      out.push({ op: "same", text: x[i - 1] });
      i -= 1;
      j -= 1;
    }
    if (d === 0) break;
    if (down) {
      out.push({ op: "add", text: y[j - 1] });
      j -= 1;
    } else {
      out.push({ op: "del", text: x[i - 1] });
      i -= 1;
    }
  }
  return out.reverse();
}

/** How many lines each kind: {same, add, del}. */
export function diffSummary(ops) {
  const counts = { same: 0, add: 0, del: 0 };
  for (const { op } of ops) counts[op] += 1;
  return counts;
}

/**
 * The diff for reading: each line with its numbers in the old and new text ({op, text, left,
 * right}, 0 for none), and runs of unchanged lines further than `context` lines from a change
 * folded into {op: "skip", lines: [...]} (the folded lines, to unfold).
 */
export function foldUnchanged(ops, context = 3) {
  const numbered = [];
  let left = 0;
  let right = 0;
  for (const { op, text } of ops) {
    if (op !== "add") left += 1;
    if (op !== "del") right += 1;
    numbered.push({ op, text, left: op === "add" ? 0 : left, right: op === "del" ? 0 : right });
  }
  const out = [];
  let i = 0;
  while (i < numbered.length) {
    if (numbered[i].op !== "same") {
      out.push(numbered[i]);
      i += 1;
      continue;
    }
    let end = i;
    while (end < numbered.length && numbered[end].op === "same") end += 1;
    const keepBefore = i === 0 ? 0 : context;  // lines kept after the change before the run
    const keepAfter = end === numbered.length ? 0 : context;  // and before the next change
    if (end - i > keepBefore + keepAfter + 1) {
      out.push(...numbered.slice(i, i + keepBefore));
      out.push({ op: "skip", lines: numbered.slice(i + keepBefore, end - keepAfter) });
      out.push(...numbered.slice(end - keepAfter, end));
    } else out.push(...numbered.slice(i, end));
    i = end;
  }
  return out;
}
