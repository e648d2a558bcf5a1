// A run (#/runs/<id>): its DAG coloured by step status, live over SSE; its attempts as a
// timeline; the selected step's parameters, output and error; cancel and retry.
//
// The page folds the run's events (fold.js) as they come: GET /runs/{id}/events sends
// the past ones, then live ones, and ends after the terminal event. After a drop the
// EventSource reconnects with Last-Event-ID itself; if it gives up (CLOSED), the page
// opens a new one with `last_event_id` = the last id it applied. Either way an event is
// applied once: the fold skips an id it has seen.
import { ApiError, may, request, sessionHolds, url } from "./api.js";
import { drawDag, graphOf, paint } from "./dag.js";
import { button, el, show, statusBadge, when } from "./dom.js";
import { KINDS, TERMINAL, between, emptyRun, receive, statuses } from "./fold.js";
import { attemptsTable, chartView } from "./timeline.js";

const ACTIVE = new Set(["queued", "scheduled", "running"]);
const RETRYABLE = new Set(["failed", "cancelled", "timed_out"]);
/** Milliseconds before the page opens a stream again when its EventSource gave up. */
export const RECONNECT_MS = 1500;
/** Milliseconds between redraws while events pour in. */
const REDRAW_MS = 40;
/** Milliseconds between redraws of an active run's timeline when no event comes. */
const TICK_MS = 1000;

/** A fold-shaped state from the run resource: what to show before the first event. */
export function fromResource(run) {
  const state = emptyRun();
  Object.assign(state, {
    status: run.status, trigger: run.trigger, input: run.input, output: run.output,
    error: run.error, attempt: run.attempt, parent_run_id: run.parent_run_id,
    created_at: run.created_at, started_at: run.started_at, finished_at: run.finished_at,
    waiting: run.waiting || null,
  });
  for (const step of run.steps || []) {
    state.order.push(step.node_id);
    state.nodes[step.node_id] = {
      status: step.status, attempt: step.attempts, output: step.output,
      error: step.error ? step.error.message : null, reused: Boolean(step.reused),
      started_at: step.started_at, finished_at: step.finished_at, attempts: [],
    };
  }
  return state;
}

export function json(value) {
  return el("pre", { className: "json" }, value === undefined ? "" : JSON.stringify(value, null, 2));
}

/** The page at #/runs/<id>. */
export async function render({ session, main, values, navigate, onLeave, isCurrent, signedOut }) {
  const id = values.id;
  const run = await request("GET", `/runs/${encodeURIComponent(id)}`);
  let definition = null;
  try {
    definition = await request("GET", `/workflows/${encodeURIComponent(run.workflow_id)}?version=${run.version}`);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
  }
  if (!isCurrent()) return;
  const page = runPage({ session, run, definition, navigate });
  show(main, page.node);
  page.follow(onLeave, signedOut);
}

function runPage({ session, run, definition, navigate }) {
  const folded = emptyRun();
  let selected = null;
  let connection = "connecting";
  let timer = null;
  const graph = definition ? graphOf(definition) : { nodes: run.steps.map((s) => ({ id: s.node_id, type: "?" })), edges: [] };
  const drawing = drawDag(graph);
  for (const node of drawing.querySelectorAll("g.node")) {
    node.addEventListener("click", () => select(node.dataset.node));
  }
  const parts = {
    summary: el("div", { id: "run-summary" }),
    actions: el("div", { id: "run-actions", className: "actions" }),
    detail: el("section", { id: "step-detail", className: "card" }),
    timeline: el("div", { id: "timeline" }),
    io: el("div", { id: "run-io" }),
    events: el("p", { id: "run-events", className: "muted" }),
  };
  const node = el("section", { id: "run", className: "card", "data-run": run.id },
    el("h1", {}, "Run ", el("code", {}, run.id)),
    parts.summary, parts.actions,
    el("h2", {}, "Graph"),
    el("div", { className: "dag-frame" }, drawing),
    parts.detail,
    el("h2", {}, "Timeline"), parts.timeline,
    parts.io, parts.events);

  const current = () => (folded.ref ? folded : fromResource(run));

  function select(nodeId) {
    selected = nodeId;
    redraw();
  }

  function redraw() {
    timer = null;
    const state = current();
    paint(drawing, statuses(state));
    for (const g of drawing.querySelectorAll("g.node")) g.classList.toggle("selected", g.dataset.node === selected);
    show(parts.summary, summaryView(state, run, definition));
    show(parts.actions, actionsView(session, state, run, navigate));
    show(parts.detail, detailView(state, definition, selected));
    parts.detail.hidden = selected === null;
    drawTimeline(state);
    show(parts.io, ioView(state));
    const last = folded.lastId === null ? "" : String(folded.lastId);
    parts.events.setAttribute("data-last-event-id", last);
    parts.events.setAttribute("data-event-ids", folded.ids.join(" "));
    parts.events.setAttribute("data-connection", connection);
    show(parts.events, `Events: ${folded.ids.length} (${connection})`);
  }

  function drawTimeline(state = current()) {
    show(parts.timeline, chartView(state, new Date().toISOString(), select), attemptsTable(state, select));
  }

  function later() {
    if (timer === null) timer = setTimeout(redraw, REDRAW_MS);
  }

  function follow(onLeave, signedOut) {
    const ticker = setInterval(() => drawTimeline(), TICK_MS);  // running bars grow
    const stop = followRun(run.id, folded, (now) => {
      connection = now;
      if (now === "ended") clearInterval(ticker);
      later();
    }, signedOut);
    onLeave(() => {
      stop();
      clearInterval(ticker);
      clearTimeout(timer);
    });
    redraw();
  }

  redraw();
  return { node, follow };
}

/**
 * Fold a run's SSE stream into `folded` (fold.js) until its terminal event, calling
 * `changed(connection)` after each change ("live", "reconnecting", "ended"). After a drop
 * the EventSource reconnects with Last-Event-ID itself; if it gives up (CLOSED), a new
 * one starts after the last id applied, unless the session has gone (`onSignedOut()`).
 * Answers `stop()`.
 */
export function followRun(runId, folded, changed, onSignedOut = () => {}) {
  let source = null;
  let reopen = null;
  let stopped = false;
  const onMessage = (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (!receive(folded, message.lastEventId, event)) return;
    if (event.kind in TERMINAL) {
      stopped = true;
      source.close();
      changed("ended");
    } else {
      changed("live");
    }
  };
  const open = () => {
    const after = folded.lastId === null ? "" : `?last_event_id=${folded.lastId}`;
    source = new EventSource(url(`/runs/${encodeURIComponent(runId)}/events${after}`), { withCredentials: true });
    for (const kind of KINDS) source.addEventListener(kind, onMessage);
    source.addEventListener("open", () => changed("live"));
    source.addEventListener("error", () => {
      if (stopped) return;
      changed("reconnecting");
      if (source.readyState !== EventSource.CLOSED) return;
      // Refused (or ended by the gateway): a session that has gone goes back to sign-in
      // instead of asking again every RECONNECT_MS.
      reopen = setTimeout(async () => {
        if (stopped) return;
        if (await sessionHolds()) {
          if (!stopped) open();
        } else {
          stopped = true;
          changed("signed-out");
          onSignedOut();
        }
      }, RECONNECT_MS);
    });
  };
  open();
  return () => {
    stopped = true;
    clearTimeout(reopen);
    source.close();
  };
}

function summaryView(state, run, definition) {
  const trigger = state.trigger || run.trigger;
  const name = definition ? definition.name : run.workflow_id;
  const rows = [
    ["Status", el("span", { id: "run-status" }, statusBadge(state.status))],
    ["Workflow", [el("a", { href: `#/workflows/${encodeURIComponent(run.workflow_id)}` }, name), ` v${run.version}`]],
    ["Trigger", el("span", { id: "run-trigger" }, trigger ? trigger.kind : "")],
    state.parent_run_id ? ["Retry of", el("a", { id: "parent-run", href: `#/runs/${encodeURIComponent(state.parent_run_id)}` }, state.parent_run_id)] : null,
    ["Created", when(state.created_at || run.created_at)],
    ["Started", when(state.started_at)],
    ["Finished", when(state.finished_at)],
    ["Duration", state.finished_at ? `${between(state.started_at || state.created_at, state.finished_at)} ms` : ""],
    state.waiting ? ["Waiting", el("span", { id: "waiting" }, waitingText(state.waiting))] : null,
  ].filter((row) => row && row[1] !== "");
  return el("dl", { className: "facts" }, rows.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

/** Why a queued run waits, in words. */
export function waitingText(waiting) {
  const why = {
    tenant_max_running: "the tenant runs as many runs as it may",
    concurrency_key: "its workflow's concurrency limit for its key is reached",
    capacity: "the executors are busy with other runs",
  }[waiting.reason] || waiting.reason;
  return `${waiting.reason}: ${why}${waiting.since ? ` (since ${when(waiting.since)})` : ""}`;
}

function actionsView(session, state, run, navigate) {
  if (!may(session, "operator")) return [];
  const error = el("span", { id: "action-error", className: "error", role: "alert" });
  const act = async (work) => {
    error.replaceChildren();
    try {
      await work();
    } catch (failure) {
      error.append(failure.message);
    }
  };
  const path = `/runs/${encodeURIComponent(run.id)}`;
  return [
    ACTIVE.has(state.status)
      ? button("Cancel", () => act(() => request("POST", `${path}/cancel`, { reason: "cancelled in the console" })), { id: "cancel" })
      : null,
    RETRYABLE.has(state.status)
      ? button("Retry", () => act(async () => {
        const started = await request("POST", `${path}/retry`);
        navigate(`/runs/${started.run_id}`);
      }), { id: "retry" })
      : null,
    error,
  ];
}

function detailView(state, definition, nodeId) {
  if (nodeId === null) return [];
  const step = state.nodes[nodeId];
  const declared = definition && (definition.nodes || []).find((n) => n.id === nodeId);
  return [
    el("h2", {}, "Step ", el("code", { id: "step-id" }, nodeId), " ",
      el("span", { id: "step-status" }, statusBadge(step ? step.status : "pending"))),
    step && step.reused ? el("p", { id: "step-reused", className: "reused-note" }, "Reused: this output is the parent run's, the step did not run again.") : null,
    el("h3", {}, "Input"),
    el("p", { className: "muted" }, "The node's parameters as defined (templates unresolved): run events do not record a step's resolved input."),
    el("div", { id: "step-input" }, json(declared ? declared.parameters ?? {} : null)),
    el("h3", {}, "Output"),
    el("div", { id: "step-output" }, json(step ? step.output : null)),
    step && step.error ? [el("h3", {}, "Error"), el("p", { id: "step-error", className: "error" }, step.error)] : null,
    el("h3", {}, "Attempts"),
    attemptsTable(state, () => {}, nodeId),
  ];
}

function ioView(state) {
  return [
    el("h2", {}, "Input"), el("div", { id: "run-input" }, json(state.input)),
    el("h2", {}, "Output"), el("div", { id: "run-output" }, json(state.output)),
    state.error
      ? [el("h2", {}, "Error"), el("p", { id: "run-error", className: "error" },
        `${state.error.code}: ${state.error.message}${state.error.node_id ? ` (step ${state.error.node_id})` : ""}`)]
      : null,
  ];
}
