// A run's timeline: every attempt of every step as a bar (SVG) and as a row of a table,
// from the fold (fold.js). `bars` (pure) says where each bar goes; the views draw them.
import { between } from "./fold.js";
import { el, statusBadge, svg } from "./dom.js";

export const CHART = { label: 150, width: 560, row: 22, bar: 14, margin: 6 };

/**
 * Where each attempt's bar goes: one row per node that ran an attempt, x from the run's
 * start to `now` (or its end) scaled to CHART.width. A running attempt ends at `now`.
 * Answers {rows: [{node_id, y, bars: [{attempt, outcome, x, width, retryWidth}]}], span_ms}.
 */
export function bars(state, now) {
  const start = state.started_at || state.created_at;
  const end = state.finished_at || now;
  const span = Math.max(1, between(start, end) ?? 1);
  const scale = (iso) => Math.max(0, Math.min(CHART.width, ((between(start, iso) ?? 0) / span) * CHART.width));
  const rows = [];
  for (const id of state.order) {
    const node = state.nodes[id];
    if (!node.attempts.length) continue;
    const y = CHART.margin + rows.length * CHART.row;
    const placed = node.attempts.map((a) => {
      const x = scale(a.started_at);
      const to = scale(a.finished_at || end);
      const retryWidth = a.retry_delay_ms ? (a.retry_delay_ms / span) * CHART.width : 0;
      return { attempt: a.attempt, outcome: a.outcome, x, width: Math.max(2, to - x), retryWidth };
    });
    rows.push({ node_id: id, y, bars: placed });
  }
  return { rows, span_ms: span };
}

/** The chart: a row per step, a bar per attempt coloured by outcome, retry delays dashed. */
export function chartView(state, now, onSelect) {
  const { rows, span_ms: span } = bars(state, now);
  if (!rows.length) return el("p", { className: "muted", id: "timeline-empty" }, "No attempt has started yet.");
  const height = CHART.margin * 2 + rows.length * CHART.row + 14;
  const width = CHART.label + CHART.width + CHART.margin * 2;
  const drawn = rows.map(({ node_id: id, y, bars: placed }) => {
    const label = svg("text", { className: "tl-label", x: CHART.margin, y: y + CHART.bar - 2 }, id);
    const parts = placed.map((b) => {
      const x = CHART.label + b.x;
      const bar = svg("rect", {
        className: `tl-bar outcome-${b.outcome}`, x, y, width: b.width, height: CHART.bar, rx: 2,
        "data-node": id, "data-attempt": b.attempt,
      }, svg("title", {}, `${id} attempt ${b.attempt}: ${b.outcome}`));
      bar.addEventListener("click", () => onSelect(id));
      const retry = b.retryWidth > 0
        ? svg("line", { className: "tl-retry", x1: x + b.width, x2: x + b.width + b.retryWidth, y1: y + CHART.bar / 2, y2: y + CHART.bar / 2 })
        : null;
      return [bar, retry];
    });
    return svg("g", { className: "tl-row" }, label, parts);
  });
  const axisY = height - 4;
  return svg("svg", {
    className: "timeline", id: "timeline-chart", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-label": "the attempts of each step over time",
  }, drawn,
  svg("text", { className: "tl-axis", x: CHART.label, y: axisY }, "0 ms"),
  svg("text", { className: "tl-axis tl-axis-end", x: CHART.label + CHART.width, y: axisY }, `${Math.round(span)} ms`));
}

function duration(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function time(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return `${d.toLocaleTimeString()}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/** The table: a row per attempt (a reused step is one row saying so). */
export function attemptsTable(state, onSelect, only = null) {
  const rows = [];
  for (const id of only ? [only] : state.order) {
    const node = state.nodes[id];
    if (!node) continue;
    const select = (row) => {
      row.addEventListener("click", () => onSelect(id));
      return row;
    };
    if (node.reused) {
      rows.push(select(el("tr", { className: "reused", "data-node": id },
        el("td", {}, id), el("td", {}, "—"), el("td", { colspan: 4 }, "reused: the output of the parent run's step"),
        el("td", {}, statusBadge("succeeded")), el("td", {}, ""))));
    }
    for (const a of node.attempts) {
      rows.push(select(el("tr", { "data-node": id, "data-attempt": a.attempt },
        el("td", {}, id),
        el("td", {}, String(a.attempt)),
        el("td", {}, time(a.started_at)),
        el("td", {}, time(a.finished_at)),
        el("td", {}, duration(between(a.started_at, a.finished_at))),
        el("td", { className: "retry-delay" }, a.retry_delay_ms ? `retry after ${duration(a.retry_delay_ms)}` : ""),
        el("td", { className: "outcome" }, statusBadge(a.outcome)),
        el("td", { className: "attempt-error" }, a.error || ""))));
    }
  }
  if (!rows.length) return el("p", { className: "muted" }, "No attempts.");
  return el("table", { className: "attempts" },
    el("thead", {}, el("tr", {}, ["Step", "Attempt", "Start", "End", "Duration", "Retry", "Outcome", "Error"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows));
}
