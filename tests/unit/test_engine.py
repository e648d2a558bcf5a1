"""The executor's DAG engine: branches, joins, skips, retries, timeouts, cancel, output, replay."""

from __future__ import annotations

import itertools
from datetime import timedelta

import msgspec
import pytest

from flowmesh_executor.actions import (
    CompleteStep,
    FailStep,
    FinishRun,
    RetryStep,
    RunContext,
    SkipSteps,
    StartRun,
    StartStep,
    WakeAt,
)
from flowmesh_executor.engine import decide
from flowmesh_executor.instant import REDACTED
from flowmesh_executor.retry import jitter_fraction, retry_delay_ms
from flowmesh_executor.state import RunState, fold, reused_outputs
from flowmesh_proto.runs import RunEvent, StepBatch, StepSucceeded
from flowmesh_proto.workflow import RetryPolicy
from tests.unit.engine_shell import T0, Run, definition

NOOP = "noop"


def noop(node_id: str, **extra: object) -> dict[str, object]:
    return {"id": node_id, "type": NOOP, **extra}


def http(node_id: str, **extra: object) -> dict[str, object]:
    return {"id": node_id, "type": "http", "parameters": {"url": "https://x.example/"}, **extra}


def cond(node_id: str, expression: str) -> dict[str, object]:
    return {"id": node_id, "type": "condition", "parameters": {"expression": expression}}


def edge(source: str, target: str, when: str | None = None) -> dict[str, object]:
    return {"from": source, "to": target} | ({"when": when} if when is not None else {})


def finish(run: Run) -> FinishRun:
    (action,) = [a for d in run.decisions for a in d.actions if isinstance(a, FinishRun)]
    return action


# --- linear chains ------------------------------------------------------------------------


def test_a_chain_of_instant_nodes_finishes_in_one_decision_and_one_batch() -> None:
    ids = [f"n{i}" for i in range(40)]
    run = Run(definition([noop(i) for i in ids], [edge(a, b) for a, b in itertools.pairwise(ids)]))
    actions = run.decide()
    assert isinstance(actions[0], StartRun)
    assert [a.node_id for a in actions if isinstance(a, CompleteStep)] == ids
    assert isinstance(actions[-1], FinishRun) and actions[-1].status == "succeeded"
    assert actions[-1].output == {"n39": None}
    kinds = [e.__struct_config__.tag for e in run.decisions[0].events]
    assert kinds == ["run.started", "steps", "run.succeeded"]
    batch = run.decisions[0].events[1]
    assert isinstance(batch, StepBatch) and len(batch.events) == 40
    assert all(isinstance(e, StepSucceeded) and e.started_at == T0 for e in batch.events)


def test_a_chain_of_shell_steps_runs_one_at_a_time_and_passes_outputs() -> None:
    nodes = [
        http("a", timeout="PT5S"),
        {"id": "b", "type": "transform", "parameters": {"output": "{{ nodes.a.output.n + 1 }}"}},
        http("c"),
    ]
    run = Run(definition(nodes, [edge("a", "b"), edge("b", "c")]))
    actions = run.decide()
    starts = [a for a in actions if isinstance(a, StartStep)]
    assert [(s.node_id, s.attempt) for s in starts] == [("a", 1)]
    assert starts[0].deadline == T0 + timedelta(seconds=5)
    assert starts[0].idempotency_key.endswith(":a")
    assert WakeAt(at=T0 + timedelta(seconds=5)) in actions
    run.succeed("a", {"n": 41})
    actions = run.decide()
    assert CompleteStep(node_id="b", attempt=1, output=42) in actions
    assert [a.node_id for a in actions if isinstance(a, StartStep)] == ["c"]
    run.succeed("c", "done")
    run.decide()
    assert finish(run).output == {"c": "done"}
    assert run.state.status == "succeeded"


# --- branches, joins, skips --------------------------------------------------------------


@pytest.mark.parametrize(("value", "taken", "untaken"), [(True, "yes", "no"), (False, "no", "yes")])
def test_if_else_with_a_join(value: bool, taken: str, untaken: str) -> None:
    nodes = [cond("c", "trigger.data.flag"), noop("yes"), noop("no"), noop("join")]
    edges = [edge("c", "yes", "true"), edge("c", "no", "false"), edge("yes", "join")]
    edges.append(edge("no", "join"))
    run = Run(definition(nodes, edges), data={"flag": value})
    actions = run.decide()
    assert SkipSteps(node_ids=[untaken]) in actions
    assert (run.status(taken), run.status(untaken), run.status("join")) == (
        "succeeded",
        "skipped",
        "succeeded",
    )
    assert run.state.nodes["c"].output is value
    assert finish(run).output == {"join": None}


def test_switch_takes_the_matching_case_or_default() -> None:
    nodes = [
        {
            "id": "s",
            "type": "switch",
            "parameters": {"expression": "trigger.data.k", "cases": ["a", "b"]},
        },
        noop("on_a"),
        noop("on_b"),
        noop("other"),
    ]
    edges = [edge("s", "on_a", "a"), edge("s", "on_b", "b"), edge("s", "other", "default")]
    for data, chosen in (({"k": "b"}, "on_b"), ({"k": "zzz"}, "other")):
        run = Run(definition(nodes, edges), data=data)
        run.decide()
        assert [n for n in ("on_a", "on_b", "other") if run.status(n) == "succeeded"] == [chosen]
        assert run.state.nodes["s"].output == ("default" if chosen == "other" else "b")


def test_skips_propagate_through_several_levels_and_stop_at_a_join_with_a_taken_path() -> None:
    nodes = [cond("c", "false"), noop("a1"), noop("a2"), noop("a3"), noop("b1"), noop("end")]
    edges = [edge("c", "a1", "true"), edge("a1", "a2"), edge("a2", "a3"), edge("a3", "end")]
    edges += [edge("c", "b1", "false"), edge("b1", "end")]
    run = Run(definition(nodes, edges))
    run.decide()
    assert [run.status(n) for n in ("a1", "a2", "a3")] == ["skipped"] * 3
    assert run.status("end") == "succeeded"
    assert finish(run).output == {"end": None}


def test_a_node_whose_every_path_is_cut_is_skipped_and_left_out_of_the_output() -> None:
    nodes = [cond("c", "true"), noop("x"), noop("y"), noop("z")]
    edges = [edge("c", "x", "false"), edge("x", "y"), edge("c", "z", "true")]
    run = Run(definition(nodes, edges))
    run.decide()
    assert (run.status("x"), run.status("y")) == ("skipped", "skipped")
    assert finish(run).output == {"z": None}


# --- retries and timeouts ---------------------------------------------------------------


def test_retries_to_exhaustion_with_backoff_then_the_run_fails() -> None:
    retry = {"max_attempts": 3, "backoff": "exponential", "initial": "PT1S", "max": "PT10S"}
    run = Run(definition([http("a", retry=retry)]))
    run.decide()
    delays = []
    for attempt in (1, 2):
        run.fail("a")
        node = run.state.node("a")
        assert (node.status, node.attempt) == ("pending", attempt)
        assert node.retry_at is not None
        delays.append(node.retry_at - run.now)
        actions = run.decide()
        assert not [a for a in actions if isinstance(a, StartStep)]
        assert WakeAt(at=node.retry_at) in actions
        run.now = node.retry_at
        actions = run.decide()
        assert [(a.node_id, a.attempt) for a in actions if isinstance(a, StartStep)] == [
            ("a", attempt + 1)
        ]
    assert timedelta(seconds=0.5) <= delays[0] <= timedelta(seconds=1)
    assert timedelta(seconds=1) <= delays[1] <= timedelta(seconds=2)
    run.fail("a", ("HttpError", "status 503"))
    run.decide()
    done = finish(run)
    assert done.status == "failed" and done.error is not None
    assert (done.error.node_id, done.error.message) == ("a", "HttpError: status 503")


@pytest.mark.parametrize("backoff", ["fixed", "linear", "exponential"])
def test_backoff_is_deterministic_and_bounded_by_the_policy(backoff: str) -> None:
    policy = RetryPolicy(
        max_attempts=10,
        backoff=backoff,
        initial=timedelta(seconds=1),
        max=timedelta(seconds=5),  # type: ignore[arg-type]
    )
    plain = msgspec.structs.replace(policy, jitter=False)
    for attempt in range(1, 10):
        base = retry_delay_ms(plain, attempt, run_id="r", node_id="n")
        expected = {
            "fixed": 1000,
            "linear": 1000 * attempt,
            "exponential": 1000 * 2 ** (attempt - 1),
        }
        assert base == min(expected[backoff], 5000)
        jittered = retry_delay_ms(policy, attempt, run_id="r", node_id="n")
        assert base // 2 <= jittered <= base
        assert jittered == retry_delay_ms(policy, attempt, run_id="r", node_id="n")
    fractions = {jitter_fraction("r", f"n{i}", 1) for i in range(50)}
    assert len(fractions) == 50 and all(0 <= f < 1 for f in fractions)


def test_an_attempt_past_its_deadline_fails_as_a_timeout_and_is_retried() -> None:
    node = http("a", timeout="PT2S", retry={"max_attempts": 2, "initial": "PT1S", "jitter": False})
    run = Run(definition([node]))
    run.decide()
    run.advance(seconds=2)
    actions = run.decide()
    assert RetryStep(node_id="a", attempt=2, at=run.now + timedelta(seconds=1)) in actions
    assert run.state.node("a").error_class == "StepTimeout"
    run.succeed("a", "late")  # a stale report for attempt 1 is ignored
    assert run.status("a") == "pending"
    run.advance(seconds=1)
    run.decide()
    assert [(s.node_id, s.attempt) for s in run.started()] == [("a", 1), ("a", 2)]
    run.advance(seconds=2)
    run.decide()
    assert finish(run).status == "failed"


def test_the_run_times_out_and_cancels_running_steps() -> None:
    run = Run(definition([http("a")], timeout="PT1M"))
    actions = run.decide()
    assert WakeAt(at=T0 + timedelta(minutes=1)) in actions
    run.advance(minutes=1)
    run.decide()
    assert finish(run) == FinishRun(
        status="timed_out", reason="the run's timeout passed", cancel=["a"]
    )
    assert run.state.status == "timed_out" and run.status("a") == "cancelled"
    assert run.decide() == []


def test_cancel_finishes_the_run_and_starts_nothing_new() -> None:
    run = Run(definition([http("a"), http("b")], [edge("a", "b")]))
    run.decide()
    run.context = RunContext(cancel_requested=True, cancel_reason="by alice")
    actions = run.decide()
    assert actions == [
        SkipSteps(node_ids=["b"]),  # will never run
        FinishRun(status="cancelled", reason="by alice", cancel=["a"]),
    ]
    run.succeed("a")
    assert run.state.status == "cancelled"
    assert (run.status("a"), run.status("b")) == ("cancelled", "skipped")


# --- on_error --------------------------------------------------------------------------


def test_on_error_continue_lets_downstream_run_with_a_null_output() -> None:
    nodes = [
        http("a", on_error="continue"),
        {"id": "b", "type": "transform", "parameters": {"output": "{{ nodes.a.output == null }}"}},
    ]
    run = Run(definition(nodes, [edge("a", "b")]))
    run.decide()
    run.fail("a")
    run.decide()
    assert run.status("a") == "failed" and run.state.nodes["b"].output is True
    assert finish(run).status == "succeeded" and finish(run).output == {"b": True}


def test_a_fallback_stands_in_for_the_failed_node_downstream() -> None:
    nodes = [
        http("a", on_error="fallback:fb"),
        {"id": "fb", "type": "transform", "parameters": {"output": {"from": "fallback"}}},
        {"id": "b", "type": "transform", "parameters": {"output": "{{ nodes.a.output.from }}"}},
    ]
    run = Run(definition(nodes, [edge("a", "b")]))
    run.decide()
    assert run.status("fb") == "pending"
    run.fail("a")
    run.decide()
    assert (run.status("a"), run.status("fb"), run.state.nodes["b"].output) == (
        "failed",
        "succeeded",
        "fallback",
    )
    assert finish(run).output == {"b": "fallback"}


def test_an_unneeded_fallback_is_skipped() -> None:
    nodes = [http("a", on_error="fallback:fb"), noop("fb"), noop("b")]
    run = Run(definition(nodes, [edge("a", "b")]))
    run.decide()
    run.succeed("a", 1)
    run.decide()
    assert (run.status("fb"), run.status("b")) == ("skipped", "succeeded")


def test_an_expression_error_fails_the_step_subject_to_on_error() -> None:
    nodes = [cond("c", "trigger.data.missing"), noop("t")]
    run = Run(definition(nodes, [edge("c", "t", "true")]), data={})
    run.decide()
    assert run.state.node("c").error_class == "ExpressionError"
    assert finish(run).status == "failed"


# --- output, secrets, replay, retry-from-failed ---------------------------------------------


def test_the_named_output_node_gives_the_run_output() -> None:
    nodes = [{"id": "a", "type": "transform", "parameters": {"output": [1, 2]}}, noop("b")]
    run = Run(definition(nodes, [edge("a", "b")], output="a"))
    run.decide()
    assert finish(run).output == [1, 2]


def test_secret_values_never_reach_recorded_outputs() -> None:
    # A transform may not read secrets (see test_executor_secrets); a secret's value that
    # comes in some other way (here, the input) is still redacted: the second line.
    nodes = [{"id": "a", "type": "transform", "parameters": {"output": "{{ trigger.data.h }}"}}]
    context = RunContext(secrets={"TOKEN": "s3cr3t"})
    run = Run(definition(nodes), context=context, data={"h": "Bearer s3cr3t"})
    run.decide()
    assert run.state.nodes["a"].output == f"Bearer {REDACTED}"
    assert b"s3cr3t" not in msgspec.json.encode(run.decisions[0].events)


def test_replaying_the_events_rebuilds_the_same_state() -> None:
    nodes = [cond("c", "true"), http("h", retry={"max_attempts": 2}), noop("n"), noop("j")]
    edges = [edge("c", "h", "true"), edge("c", "n", "false"), edge("h", "j"), edge("n", "j")]
    run = Run(definition(nodes, edges))
    run.decide()
    run.fail("h")
    run.now = run.state.node("h").retry_at or run.now
    run.decide()
    run.succeed("h", {"ok": True})
    run.decide()
    wire = msgspec.json.encode(run.events)
    decoded = msgspec.json.decode(wire, type=list[RunEvent])
    assert fold(decoded) == run.state == fold(run.events)
    assert fold(decoded) == fold(decoded)


def test_retry_from_failed_reuses_succeeded_outputs() -> None:
    nodes = [http("a"), http("b"), noop("c")]
    defn = definition(nodes, [edge("a", "b"), edge("b", "c")])
    parent = Run(defn)
    parent.decide()
    parent.succeed("a", {"v": 1})
    parent.decide()
    parent.fail("b")
    parent.decide()
    assert parent.state.status == "failed"
    child = Run(defn, context=RunContext(reused=reused_outputs(parent.state)))
    actions = child.decide()
    assert CompleteStep(node_id="a", attempt=1, output={"v": 1}, reused=True) in actions
    assert [s.node_id for s in child.started()] == ["b"]


def test_decide_needs_a_queued_run_and_leaves_its_input_state_alone() -> None:
    defn = definition([noop("a")])
    with pytest.raises(ValueError, match=r"run\.queued"):
        decide(defn, RunState(), T0)
    run = Run(defn)
    before = msgspec.to_builtins(run.state)
    decision = decide(defn, run.state, T0)
    assert msgspec.to_builtins(run.state) == before
    assert decision.state.status == "succeeded"


def test_an_output_history_could_not_keep_fails_its_step() -> None:
    nodes = [
        {"id": "t", "type": "transform", "parameters": {"output": {"s": "{{ trigger.data.s }}"}}}
    ]
    run = Run(definition(nodes, []), data={"s": "a\x00b"})  # as an http response may hold
    (failed,) = [a for a in run.decide() if isinstance(a, FailStep)]
    assert failed.error_class == "OutputNotStorable"
    assert failed.message.startswith("output.s: ")
