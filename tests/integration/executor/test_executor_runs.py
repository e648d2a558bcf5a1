"""The executor on real NATS: runs of every in-process node type, branches, policies."""

from __future__ import annotations

from typing import Any

from flowmesh_proto.runs import StepSucceeded
from tests.integration.executor.runs import Runs, flat


def chain(n: int) -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "type": "noop"} for i in range(n)]
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]
    return {"name": "chain", "nodes": nodes, "edges": edges}


async def test_a_chain_of_noops_succeeds_in_few_messages(runs: Runs) -> None:
    state = await runs.run(chain(40))
    assert state.status == "succeeded"
    assert all(node.status == "succeeded" for node in state.nodes.values())
    assert len(state.nodes) == 40
    events = await runs.events(state.ref.run_id)  # type: ignore[union-attr]
    # queued, started, one steps batch, succeeded: the chain costs one round trip
    kinds = [type(e).__struct_config__.tag for e in events]
    assert kinds == ["run.queued", "run.started", "steps", "run.succeeded"]


async def test_branches_skip_the_untaken_side(runs: Runs) -> None:
    definition = {
        "name": "branches",
        "nodes": [
            {
                "id": "check",
                "type": "condition",
                "parameters": {"expression": "trigger.data.n > 1"},
            },
            {"id": "big", "type": "transform", "parameters": {"output": "big"}},
            {"id": "small", "type": "transform", "parameters": {"output": "small"}},
            {"id": "join", "type": "transform", "parameters": {"output": "joined"}},
        ],
        "edges": [
            {"from": "check", "to": "big", "when": "true"},
            {"from": "check", "to": "small", "when": "false"},
            {"from": "big", "to": "join"},
            {"from": "small", "to": "join"},
        ],
    }
    state = await runs.run(definition, {"n": 5})
    assert state.status == "succeeded"
    assert state.nodes["big"].status == "succeeded"
    assert state.nodes["small"].status == "skipped"
    assert state.nodes["join"].status == "succeeded"
    assert state.output == {"join": "joined"}


async def test_a_delay_then_a_transform(runs: Runs) -> None:
    definition = {
        "name": "delay",
        "nodes": [
            {"id": "wait", "type": "delay", "parameters": {"duration": "PT0.2S"}},
            {"id": "after", "type": "transform", "parameters": {"output": "{{ trigger.data }}"}},
        ],
        "edges": [{"from": "wait", "to": "after"}],
    }
    state = await runs.run(definition, {"x": 1})
    assert state.status == "succeeded", state.error
    wait = state.nodes["wait"]
    assert wait.finished_at is not None and wait.started_at is not None
    assert (wait.finished_at - wait.started_at).total_seconds() >= 0.2
    assert state.output == {"after": {"x": 1}}


async def test_a_map_over_a_thousand_items(runs: Runs) -> None:
    definition = {
        "name": "map",
        "nodes": [
            {
                "id": "double",
                "type": "map",
                "parameters": {
                    "items": "trigger.data.items",
                    "node": {"type": "transform", "parameters": {"output": "{{ item * 2 }}"}},
                    "concurrency": 50,
                },
            }
        ],
        "edges": [],
    }
    state = await runs.run(definition, {"items": list(range(1000))})
    assert state.status == "succeeded", state.error
    assert state.output == {"double": [i * 2 for i in range(1000)]}


async def test_a_failing_step_fails_the_run_with_its_error(runs: Runs) -> None:
    definition = {
        "name": "fails",
        "nodes": [
            {
                "id": "bad",
                "type": "delay",
                "parameters": {"duration": "{{ trigger.data.d }}"},
                "retry": {"max_attempts": 3, "backoff": "fixed", "initial": "PT0.01S"},
            }
        ],
        "edges": [],
    }
    state = await runs.run(definition, {"d": "soon"})
    assert state.status == "failed"
    assert state.nodes["bad"].attempt == 3
    assert state.nodes["bad"].error_class == "InvalidParameters"
    assert state.error is not None and state.error.node_id == "bad"


async def test_a_step_timeout_fails_the_attempt(runs: Runs) -> None:
    definition = {
        "name": "timeout",
        "nodes": [
            {
                "id": "slow",
                "type": "delay",
                "parameters": {"duration": "PT5S"},
                "timeout": "PT0.1S",
                "on_error": "continue",
            },
            {"id": "next", "type": "noop"},
        ],
        "edges": [{"from": "slow", "to": "next"}],
    }
    state = await runs.run(definition)
    assert state.status == "succeeded"
    assert state.nodes["slow"].status == "failed"
    assert state.nodes["slow"].error_class == "StepTimeout"
    assert state.nodes["next"].status == "succeeded"


async def test_the_run_timeout(runs: Runs) -> None:
    definition = {
        "name": "run-timeout",
        "timeout": "PT0.2S",
        "nodes": [{"id": "slow", "type": "delay", "parameters": {"duration": "PT5S"}}],
        "edges": [],
    }
    state = await runs.run(definition)
    assert state.status == "timed_out"
    assert state.nodes["slow"].status == "cancelled"


async def test_cancel_mid_run(runs: Runs) -> None:
    definition = {
        "name": "cancel",
        "nodes": [
            {"id": "slow", "type": "delay", "parameters": {"duration": "PT10S"}},
            {"id": "never", "type": "noop"},
        ],
        "edges": [{"from": "slow", "to": "never"}],
    }
    workflow = await runs.workflow(definition)
    run_id = await runs.start(workflow)
    await runs.step_running(run_id, "slow")
    await runs.cancel(run_id, "no longer wanted")
    state = await runs.finished(run_id)
    assert state.status == "cancelled"
    assert state.nodes["slow"].status == "cancelled"
    assert state.nodes["never"].status == "skipped"  # will never run: listed, not left out


async def test_a_cancel_before_pickup_is_honoured(runs: Runs) -> None:
    workflow = await runs.workflow(chain(3))
    run_id = await runs.start(workflow, request=False)
    await runs.cancel(run_id)
    await runs.request(workflow, run_id)
    state = await runs.finished(run_id)
    assert state.status == "cancelled"


async def test_retry_from_failed_reuses_succeeded_outputs(runs: Runs) -> None:
    definition = {
        "name": "retry",
        "nodes": [
            {"id": "first", "type": "transform", "parameters": {"output": "{{ run.id }}"}},
            {
                "id": "second",
                "type": "condition",
                "parameters": {"expression": "trigger.kind == 'retry'"},
            },
            {"id": "fail", "type": "delay", "parameters": {"duration": "{{ trigger.data.d }}"}},
            {"id": "ok", "type": "noop"},
        ],
        "edges": [
            {"from": "first", "to": "second"},
            {"from": "second", "to": "fail", "when": "false"},
            {"from": "second", "to": "ok", "when": "true"},
        ],
    }
    workflow = await runs.workflow(definition)
    first = await runs.finished(await runs.start(workflow, {"d": "nope"}))
    assert first.status == "failed"
    parent = first.ref.run_id  # type: ignore[union-attr]
    retry = await runs.finished(
        await runs.start(workflow, {"d": "nope"}, kind="retry", parent_run_id=parent, attempt=2)
    )
    # "first" and "second" succeeded in the parent: reused as they were, not run again
    assert retry.nodes["first"].reused and retry.nodes["first"].output == parent
    assert retry.nodes["second"].reused and retry.nodes["second"].output is False
    assert retry.status == "failed"
    events = flat(await runs.events(retry.ref.run_id))  # type: ignore[union-attr]
    reused = [e.node_id for e in events if isinstance(e, StepSucceeded) and e.reused]
    assert sorted(reused) == ["first", "second"]


async def test_a_switch_takes_the_matching_case_or_default(runs: Runs) -> None:
    definition = {
        "name": "switch",
        "nodes": [
            {
                "id": "route",
                "type": "switch",
                "parameters": {"expression": "trigger.data.tier", "cases": ["gold", "silver"]},
            },
            {"id": "gold", "type": "transform", "parameters": {"output": "g"}},
            {"id": "silver", "type": "transform", "parameters": {"output": "s"}},
            {"id": "other", "type": "transform", "parameters": {"output": "o"}},
        ],
        "edges": [
            {"from": "route", "to": "gold", "when": "gold"},
            {"from": "route", "to": "silver", "when": "silver"},
            {"from": "route", "to": "other", "when": "default"},
        ],
    }
    workflow = await runs.workflow(definition)
    silver = await runs.finished(await runs.start(workflow, {"tier": "silver"}))
    bronze = await runs.finished(await runs.start(workflow, {"tier": "bronze"}))
    assert silver.output == {"silver": "s"}
    assert silver.nodes["gold"].status == silver.nodes["other"].status == "skipped"
    assert bronze.output == {"other": "o"}
    assert bronze.nodes["route"].output == "default"
