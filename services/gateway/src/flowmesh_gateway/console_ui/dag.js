// A workflow's DAG: what to draw (graphOf, from a definition), where (layout, pure), and the
// drawing (an SVG whose nodes a run page colours by status with paint).
import { svg } from "./dom.js";

export const NODE = { width: 168, height: 44, gapX: 56, gapY: 22, margin: 16 };

/**
 * The graph of a definition, for drawing: every node once (by id, in definition order) and
 * every edge between known nodes. A definition being edited may be invalid: nodes without
 * an id, duplicate ids and edges to nowhere are left out rather than refused.
 */
export function graphOf(definition) {
  const nodes = [];
  const seen = new Set();
  for (const node of (definition && Array.isArray(definition.nodes)) ? definition.nodes : []) {
    if (!node || typeof node.id !== "string" || seen.has(node.id)) continue;
    seen.add(node.id);
    nodes.push({ id: node.id, type: typeof node.type === "string" ? node.type : "?" });
  }
  const edges = [];
  for (const edge of (definition && Array.isArray(definition.edges)) ? definition.edges : []) {
    if (!edge || !seen.has(edge.from) || !seen.has(edge.to) || edge.from === edge.to) continue;
    const when = edge.when === undefined || edge.when === null ? null : String(edge.when);
    edges.push({ from: edge.from, to: edge.to, when });
  }
  return { nodes, edges };
}

/**
 * Where each node goes, left to right: a node's column is the longest path to it from a
 * root (nodes on a cycle, which only an invalid definition has, go after the others), and
 * within a column nodes are ordered by the mean row of their parents (two sweeps). Linear
 * in nodes and edges but for the sorts: a 500-node graph is a few milliseconds.
 * Answers {positions: Map id -> {x, y, column, row}, width, height}.
 */
export function layout(graph) {
  const parents = new Map(graph.nodes.map((n) => [n.id, []]));
  const children = new Map(graph.nodes.map((n) => [n.id, []]));
  for (const { from, to } of graph.edges) {
    parents.get(to).push(from);
    children.get(from).push(to);
  }
  const column = columns(graph.nodes, parents, children);
  const byColumn = [];
  for (const node of graph.nodes) (byColumn[column.get(node.id)] ??= []).push(node.id);
  const row = new Map();
  for (const ids of byColumn) ids.forEach((id, i) => row.set(id, i));
  for (const sweep of [parents, children]) {
    const order = sweep === parents ? byColumn : [...byColumn].reverse();
    for (const ids of order) {
      const mean = (id) => {
        const near = sweep.get(id).filter((other) => column.get(other) !== column.get(id));
        return near.length ? near.reduce((sum, other) => sum + row.get(other), 0) / near.length : row.get(id);
      };
      const keys = new Map(ids.map((id) => [id, mean(id)]));
      ids.sort((a, b) => keys.get(a) - keys.get(b) || row.get(a) - row.get(b));
      ids.forEach((id, i) => row.set(id, i));
    }
  }
  const { width, height, gapX, gapY, margin } = NODE;
  const positions = new Map();
  for (const node of graph.nodes) {
    const c = column.get(node.id);
    const r = row.get(node.id);
    positions.set(node.id, { column: c, row: r, x: margin + c * (width + gapX), y: margin + r * (height + gapY) });
  }
  const tallest = Math.max(0, ...byColumn.map((ids) => ids.length));
  return {
    positions,
    width: margin * 2 + Math.max(0, byColumn.length * (width + gapX) - gapX),
    height: margin * 2 + Math.max(0, tallest * (height + gapY) - gapY),
  };
}

function columns(nodes, parents, children) {
  const column = new Map();
  const waiting = new Map(nodes.map((n) => [n.id, parents.get(n.id).length]));
  const ready = nodes.filter((n) => waiting.get(n.id) === 0).map((n) => n.id);
  for (let i = 0; i < ready.length; i += 1) {
    const id = ready[i];
    const c = Math.max(-1, ...parents.get(id).map((p) => column.get(p) ?? -1)) + 1;
    column.set(id, c);
    for (const child of children.get(id)) {
      waiting.set(child, waiting.get(child) - 1);
      if (waiting.get(child) === 0) ready.push(child);
    }
  }
  const last = Math.max(-1, ...column.values());
  for (const node of nodes) if (!column.has(node.id)) column.set(node.id, last + 1);
  return column;
}

/** The SVG of a graph at its layout; each node is a `g.node[data-node=<id>]`. */
export function drawDag(graph, placed = layout(graph)) {
  const { width, height } = NODE;
  const at = placed.positions;
  const edges = graph.edges.map(({ from, to, when }) => {
    const a = at.get(from);
    const b = at.get(to);
    const x1 = a.x + width;
    const y1 = a.y + height / 2;
    const x2 = b.x;
    const y2 = b.y + height / 2;
    const bend = Math.max(24, (x2 - x1) / 2);
    const path = svg("path", {
      className: "edge", "data-from": from, "data-to": to,
      d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`,
    });
    if (when === null) return path;
    return svg("g", {}, path, svg("text", { className: "edge-label", x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4 }, when));
  });
  const nodes = graph.nodes.map(({ id, type }) => {
    const { x, y } = at.get(id);
    return svg("g", { className: "node", "data-node": id, transform: `translate(${x},${y})` },
      svg("title", {}, `${id} (${type})`),
      svg("rect", { width, height, rx: 6 }),
      svg("text", { className: "node-id", x: 10, y: 19 }, clip(id, 20)),
      svg("text", { className: "node-type", x: 10, y: 35 }, clip(type, 22)));
  });
  return svg("svg", {
    className: "dag", width: placed.width, height: placed.height,
    viewBox: `0 0 ${placed.width} ${placed.height}`, role: "img", "aria-label": "the workflow's graph",
  }, svg("g", { className: "edges" }, edges), svg("g", { className: "nodes" }, nodes));
}

function clip(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/** Colour a drawn DAG: `statuses` maps node ids to step statuses (others are left as are). */
export function paint(drawing, statuses) {
  for (const [id, status] of Object.entries(statuses)) {
    const node = drawing.querySelector(`g.node[data-node="${CSS.escape(id)}"]`);
    if (node) node.setAttribute("class", `node status-${status}`);
  }
}
