// A run's state folded from its events, for the run page. PURE: no DOM, no I/O, no clock.
//
// It mirrors the one fold every Python reader uses (proto/src/flowmesh_proto/runfold.py:
// its rules, statuses and their order are the contract; tests/unit/test_console_fold.py
// feeds the same events to both and compares). On top of that fold it keeps what a page
// needs and the run resource does not carry: every attempt of every step (start, end,
// outcome, the delay before the next), and the stream ids it has applied, so an event
// delivered twice (a reconnect with Last-Event-ID) is applied once.

/** Every kind of run event (an EventSource hands a listener only the kinds it names). */
export const KINDS = [
  "run.queued", "run.scheduled", "run.started", "run.claimed", "run.waiting",
  "step.started", "step.succeeded", "step.failed", "step.retrying", "step.skipped", "step.log",
  "steps", "run.succeeded", "run.failed", "run.cancelled", "run.timed_out",
];
export const TERMINAL = { "run.succeeded": "succeeded", "run.failed": "failed", "run.cancelled": "cancelled", "run.timed_out": "timed_out" };
const STEP_KINDS = new Set(["step.started", "step.succeeded", "step.failed", "step.retrying", "step.skipped", "step.log"]);

/** An empty run: what the page knows before its first event. */
export function emptyRun() {
  return {
    ref: null, created_at: null, status: "queued", trigger: null, input: null, attempt: 1,
    parent_run_id: null, run_at: null, started_at: null, finished_at: null,
    order: [], nodes: {}, output: null, error: null, retries: 0, waiting: null,
    lastId: null, ids: [], applied: 0,  // the stream ids applied, in order
  };
}

function emptyNode() {
  return {
    status: "pending", attempt: 0, output: null, error_class: null, error: null,
    started_at: null, attempt_started_at: null, finished_at: null, deadline: null,
    retry_at: null, reused: false, attempts: [],
  };
}

export function isFinished(state) {
  return Object.values(TERMINAL).includes(state.status);
}

/**
 * Apply one SSE message: `id` is its stream sequence (a string or number; null for a
 * computed notice such as a queued run's `run.waiting`, which has none). A message whose
 * id is not above the last one applied is a repeat and changes nothing, but for a
 * `run.waiting`: an EventSource gives a notice the last id it saw. New ids are kept in
 * `state.ids`. Answers whether the event was applied.
 */
export function receive(state, id, event) {
  if (id !== null && id !== undefined && id !== "") {
    const seq = Number(id);
    if (state.lastId !== null && seq <= state.lastId) {
      // A notice has no id, and an EventSource hands it the last id seen: it is applied
      // (a repeated stored run.waiting only says again what it said).
      if (!event || event.kind !== "run.waiting") return false;
    } else {
      state.lastId = seq;
      state.ids.push(seq);
    }
  }
  foldEvent(state, event);
  state.applied += 1;
  return true;
}

/** A new state with `events` folded in order (no ids: nothing is taken for a repeat). */
export function foldAll(events, state = emptyRun()) {
  for (const event of events) foldEvent(state, event);
  return state;
}

/** Apply one event to `state` in place (runfold.apply). */
export function foldEvent(state, event) {
  if (!event || typeof event !== "object") return state;
  if (state.ref === null) {
    state.ref = { tenant: event.tenant, run_id: event.run_id, workflow_id: event.workflow_id, version: event.version };
    state.created_at = event.at;
  }
  if (isFinished(state)) return state;
  if (event.kind === "steps") {
    for (const step of event.events || []) applyStep(state, step);
  } else if (STEP_KINDS.has(event.kind)) {
    applyStep(state, event);
  } else {
    applyRun(state, event);
  }
  return state;
}

/** The node's state, made (pending, in order after the listed ones) when first named. */
function nodeOf(state, id) {
  if (!state.nodes[id]) {
    state.nodes[id] = emptyNode();
    state.order.push(id);
  }
  return state.nodes[id];
}

function applyRun(state, event) {
  switch (event.kind) {
    case "run.queued":
    case "run.scheduled":
      if (state.status === "queued" || state.status === "scheduled") {
        state.status = event.kind === "run.queued" ? "queued" : "scheduled";
      }
      state.trigger = event.trigger ?? null;
      state.input = event.input ?? null;
      if (event.kind === "run.queued") {
        state.attempt = event.attempt ?? 1;
        state.parent_run_id = event.parent_run_id ?? null;
      } else {
        state.run_at = event.run_at;
      }
      break;
    case "run.waiting":
      if (state.status === "queued" || state.status === "scheduled") {
        state.waiting = { reason: event.reason, since: event.since };
      }
      break;
    case "run.started":
      start(state, event.at);
      if (Array.isArray(event.nodes) && event.nodes.length) listNodes(state, event.nodes);
      break;
    case "run.succeeded":
      finish(state, "succeeded", event.at);
      state.output = event.output ?? null;
      break;
    case "run.failed":
      finish(state, "failed", event.at);
      state.error = event.error;
      break;
    case "run.cancelled":
      finish(state, "cancelled", event.at);
      state.error = { code: "CANCELLED", message: event.reason || "the run was cancelled" };
      break;
    case "run.timed_out":
      finish(state, "timed_out", event.at);
      state.error = { code: "TIMED_OUT", message: "the run did not finish within its timeout" };
      break;
    default:  // run.claimed, and kinds of a newer executor: nothing to show
      break;
  }
}

function start(state, at) {
  state.waiting = null;
  if (state.status === "queued" || state.status === "scheduled") state.status = "running";
  if (state.started_at === null) state.started_at = at;
}

function listNodes(state, ids) {
  const listed = [];
  for (const id of ids) {
    if (!listed.includes(id)) listed.push(id);
    if (!state.nodes[id]) state.nodes[id] = emptyNode();
  }
  state.order = [...listed, ...state.order.filter((id) => !listed.includes(id))];
}

function finish(state, status, at) {
  state.status = status;
  state.finished_at = at;
  state.waiting = null;
  for (const node of Object.values(state.nodes)) {
    if (node.status === "running" || node.status === "pending") {
      node.status = node.attempt === 0 ? "skipped" : "cancelled";
      node.finished_at = at;
      node.deadline = null;
      node.retry_at = null;
      for (const attempt of node.attempts) {
        if (attempt.outcome === "running") Object.assign(attempt, { outcome: "cancelled", finished_at: at });
      }
    }
  }
}

/** The record of attempt `n` of a node (made when first named). */
function attemptOf(node, n, at) {
  let found = node.attempts.find((a) => a.attempt === n);
  if (!found) {
    found = { attempt: n, started_at: at, finished_at: null, outcome: "running", error: null, retry_delay_ms: null };
    node.attempts.push(found);
    node.attempts.sort((a, b) => a.attempt - b.attempt);
  }
  return found;
}

function applyStep(state, event) {
  if (!event || event.kind === "step.log") return;
  start(state, event.at);
  const node = nodeOf(state, event.node_id);
  const at = event.at;
  const n = event.attempt ?? 1;
  switch (event.kind) {
    case "step.started": {
      node.status = "running";
      node.attempt = Math.max(node.attempt, n);
      node.started_at = node.started_at || at;
      node.attempt_started_at = at;
      node.deadline = event.deadline ?? null;
      node.retry_at = null;
      node.finished_at = null;
      const attempt = attemptOf(node, n, at);
      attempt.started_at = at;
      attempt.outcome = "running";
      break;
    }
    case "step.succeeded": {
      const reused = Boolean(event.reused);
      if (!reused) node.attempt = Math.max(node.attempt, n);
      node.status = "succeeded";
      node.output = event.output ?? null;
      node.reused = reused;
      node.started_at = node.started_at || event.started_at || at;
      node.attempt_started_at = event.started_at || node.attempt_started_at || at;
      node.finished_at = at;
      node.deadline = null;
      node.retry_at = null;
      node.error_class = null;
      node.error = null;
      if (!reused) {
        const attempt = attemptOf(node, n, event.started_at || at);
        Object.assign(attempt, { finished_at: at, outcome: "succeeded" });
      }
      break;
    }
    case "step.failed": {
      const final = event.final ?? true;
      node.status = final ? "failed" : "pending";
      node.attempt = Math.max(node.attempt, n);
      node.error_class = event.error_class;
      node.error = event.message;
      node.started_at = node.started_at || at;
      node.finished_at = final ? at : null;
      node.deadline = null;
      node.retry_at = null;
      const attempt = attemptOf(node, n, at);
      Object.assign(attempt, { finished_at: at, outcome: "failed", error: event.message });
      break;
    }
    case "step.retrying": {
      node.status = "pending";
      node.retry_at = new Date(Date.parse(at) + (event.delay_ms || 0)).toISOString();
      state.retries += 1;
      const before = node.attempts.find((a) => a.attempt === n - 1);
      if (before) before.retry_delay_ms = event.delay_ms;
      break;
    }
    case "step.skipped":
      node.status = "skipped";
      node.finished_at = at;
      node.deadline = null;
      node.retry_at = null;
      break;
    default:
      break;
  }
}

/** {node id: status} of every node the events named, for dag.js's paint. */
export function statuses(state) {
  return Object.fromEntries(state.order.map((id) => [id, state.nodes[id].status]));
}

/** Milliseconds between two RFC 3339 times, or null. */
export function between(start, end) {
  if (!start || !end) return null;
  return Date.parse(end) - Date.parse(start);
}
