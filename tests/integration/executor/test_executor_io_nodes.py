"""Node types that reach outside the run: sub-workflows, events, maps over workflows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import msgspec

from flowmesh_proto import headers as h
from flowmesh_proto.entries import node_catalog
from flowmesh_proto.events import EventEnvelope, event_decoder
from tests.helpers import until
from tests.integration.executor.runs import Runs


def assert_catalog_output(node_type: str, output: Any) -> None:
    """A real step's output is what the catalog (GET /catalog) says this type outputs."""
    entry = next(entry for entry in node_catalog() if entry.name == node_type)
    errors = jsonschema_rs.validator_for(entry.output_schema).iter_errors(output)
    assert [error.message for error in errors] == [], (node_type, output)


CHILD = {
    "name": "child",
    "nodes": [
        {"id": "double", "type": "transform", "parameters": {"output": "{{ trigger.data.n * 2 }}"}}
    ],
    "edges": [],
    "output": "double",
}


async def test_a_sub_workflow_runs_and_its_output_flows_back(runs: Runs) -> None:
    child = await runs.workflow(CHILD)
    parent = {
        "name": "parent",
        "nodes": [
            {
                "id": "call",
                "type": "workflow",
                "parameters": {"workflow_id": child.id, "input": {"n": "{{ trigger.data.n }}"}},
            },
            {
                "id": "after",
                "type": "transform",
                "parameters": {"output": "{{ nodes.call.output + 1 }}"},
            },
        ],
        "edges": [{"from": "call", "to": "after"}],
    }
    state = await runs.run(parent, {"n": 20})
    assert state.status == "succeeded", state.error
    assert state.nodes["call"].output == 40
    assert state.output == {"after": 41}


async def test_a_failing_sub_workflow_fails_the_step(runs: Runs) -> None:
    failing = {
        "name": "failing-child",
        "nodes": [{"id": "bad", "type": "delay", "parameters": {"duration": "{{ 'x' }}"}}],
        "edges": [],
    }
    child = await runs.workflow(failing)
    parent = {
        "name": "parent-of-failing",
        "nodes": [{"id": "call", "type": "workflow", "parameters": {"workflow_id": child.id}}],
        "edges": [],
    }
    state = await runs.run(parent)
    assert state.status == "failed"
    assert state.nodes["call"].error_class == "ChildRunFailed"


async def test_a_map_over_a_workflow(runs: Runs) -> None:
    child = await runs.workflow(CHILD)
    parent = {
        "name": "map-children",
        "nodes": [
            {
                "id": "each",
                "type": "map",
                "parameters": {
                    "items": "trigger.data.items.map(i, {'n': i})",
                    "workflow_id": child.id,
                    "concurrency": 4,
                },
            }
        ],
        "edges": [],
    }
    state = await runs.run(parent, {"items": [1, 2, 3, 4, 5]}, timeout=20)
    assert state.status == "succeeded", state.error
    assert state.output == {"each": [2, 4, 6, 8, 10]}
    assert_catalog_output("map", state.nodes["each"].output)


async def test_publish_emits_one_event(runs: Runs) -> None:
    subject = runs.subjects.events(runs.tenant, "order.shipped")
    received: list[EventEnvelope] = []

    async def collect(msg: object) -> None:
        received.append(event_decoder.decode(msg.data))  # type: ignore[attr-defined]

    sub = await runs.nc.subscribe(subject, cb=collect)
    try:
        definition = {
            "name": "publisher",
            "nodes": [
                {
                    "id": "emit",
                    "type": "publish",
                    "parameters": {
                        "event": "order.shipped",
                        "data": {"id": "{{ trigger.data.id }}"},
                    },
                }
            ],
            "edges": [],
        }
        state = await runs.run(definition, {"id": "o-1"})
        assert state.status == "succeeded", state.error
        event_id = state.nodes["emit"].output["event_id"]
        assert_catalog_output("publish", state.nodes["emit"].output)
        await until(lambda: len(received) >= 1)
        assert [e.id for e in received] == [event_id]
        assert received[0].data == {"id": "o-1"} and received[0].tenant == runs.tenant
    finally:
        await sub.unsubscribe()


#: Waits for the approval of the run's order (``trigger.data.order``).
APPROVAL = {
    "id": "approval",
    "type": "wait_for_event",
    "parameters": {
        "event": "order.approved",
        "match": "event.data.order == trigger.data.order",
        "timeout": "PT10S",
    },
}


async def test_wait_for_event_resumes_on_a_matching_event(runs: Runs) -> None:
    definition = {
        "name": "waiter",
        "nodes": [
            APPROVAL,
            {
                "id": "done",
                "type": "transform",
                "parameters": {"output": "{{ nodes.approval.output.data.by }}"},
            },
        ],
        "edges": [{"from": "approval", "to": "done"}],
    }
    workflow = await runs.workflow(definition)
    run_id = await runs.start(workflow, {"order": "o-7"})
    await runs.step_running(run_id, "approval")
    await _event(runs, "order.approved", {"order": "o-other", "by": "mallory"})
    await _event(runs, "order.approved", {"order": "o-7", "by": "alice"})
    state = await runs.finished(run_id)
    assert state.status == "succeeded", state.error
    assert state.output == {"done": "alice"}


async def test_an_event_the_match_fails_on_is_no_match(runs: Runs) -> None:
    """An event of the type without the field the match reads neither ends nor fails the
    wait (as for a parked wait and an event trigger's filter); the matching one ends it."""
    definition = {
        "name": "guarded-waiter",
        "nodes": [APPROVAL],
        "edges": [],
    }
    workflow = await runs.workflow(definition)
    run_id = await runs.start(workflow, {"order": "o-9"})
    await runs.step_running(run_id, "approval")
    await _event(runs, "order.approved", {"by": "nobody"})  # no "order": the match errors
    await _event(runs, "order.approved", {"order": "o-9", "by": "alice"})
    state = await runs.finished(run_id)
    assert state.status == "succeeded", state.error
    assert state.nodes["approval"].output["data"]["by"] == "alice"
    assert_catalog_output("wait_for_event", state.nodes["approval"].output)


async def test_wait_for_event_times_out(runs: Runs) -> None:
    definition = {
        "name": "impatient",
        "nodes": [
            {
                "id": "approval",
                "type": "wait_for_event",
                "parameters": {"event": "never.happens", "timeout": "PT0.2S"},
            }
        ],
        "edges": [],
    }
    state = await runs.run(definition)
    assert state.status == "failed"
    assert state.nodes["approval"].error_class == "EventTimeout"


async def test_another_tenants_event_does_not_resume_a_wait(runs: Runs, other_api: object) -> None:
    definition = {
        "name": "tenant-waiter",
        "nodes": [
            {
                "id": "approval",
                "type": "wait_for_event",
                "parameters": {"event": "order.approved", "timeout": "PT0.5S"},
            }
        ],
        "edges": [],
    }
    workflow = await runs.workflow(definition)
    run_id = await runs.start(workflow)
    await runs.step_running(run_id, "approval")
    other = other_api.tenant.id  # type: ignore[attr-defined]
    envelope = EventEnvelope(id="e-x", type="order.approved", tenant=other, data={})
    await runs.js.publish(
        runs.subjects.events(other, "order.approved"), msgspec.json.encode(envelope)
    )
    state = await runs.finished(run_id)
    assert state.status == "failed"
    assert state.nodes["approval"].error_class == "EventTimeout"


async def _event(runs: Runs, event_type: str, data: object) -> None:
    envelope = EventEnvelope(
        id=f"e-{datetime.now(UTC).timestamp()}",
        type=event_type,
        tenant=runs.tenant,
        time=datetime.now(UTC),
        data=data,
    )
    await runs.js.publish(
        runs.subjects.events(runs.tenant, event_type),
        msgspec.json.encode(envelope),
        headers={h.MSG_ID: envelope.id},
    )


async def test_a_task_served_by_an_sdk_worker(runs: Runs) -> None:
    from flowmesh_worker import TaskContext, Worker

    worker = Worker(
        runs.nc, tenant=runs.tenant, prefix=runs.subjects.prefix, stream=runs.streams.tasks
    )
    seen: list[str] = []

    @worker.task("shipping")
    async def ship(data: object, task: TaskContext) -> object:
        seen.append(task.idempotency_key)
        if data == {"order": "bad"}:
            raise LookupError("no such order")
        return {"tracking": f"T-{data['order']}"}  # type: ignore[index]

    definition = {
        "name": "tasks",
        "nodes": [
            {
                "id": "ship",
                "type": "task",
                "parameters": {"queue": "shipping", "input": {"order": "{{ trigger.data.order }}"}},
            }
        ],
        "edges": [],
    }
    async with worker:
        good = await runs.run(definition, {"order": "o-1"})
        bad = await runs.run(definition, {"order": "bad"})
    assert good.status == "succeeded", good.error
    assert good.output == {"ship": {"tracking": "T-o-1"}}
    assert seen[0] == f"{good.ref.run_id}:ship"  # type: ignore[union-attr]
    assert bad.status == "failed"
    assert bad.nodes["ship"].error_class == "LookupError"
    assert bad.nodes["ship"].error == "no such order"


async def test_cancelling_a_parent_cancels_its_child(runs: Runs) -> None:
    child = await runs.workflow(
        {
            "name": "slow-child",
            "nodes": [{"id": "nap", "type": "delay", "parameters": {"duration": "PT10S"}}],
            "edges": [],
        }
    )
    parent = await runs.workflow(
        {
            "name": "parent-of-slow",
            "nodes": [{"id": "call", "type": "workflow", "parameters": {"workflow_id": child.id}}],
            "edges": [],
        }
    )
    run_id = await runs.start(parent)
    running = await runs.step_running(run_id, "call")
    from flowmesh_executor.children import child_run_id

    started = running.nodes["call"].started_at
    assert started is not None
    child_id = child_run_id(run_id, "call", 1, started)
    await runs.step_running(child_id, "nap")
    await runs.cancel(run_id)
    assert (await runs.finished(run_id)).status == "cancelled"
    assert (await runs.finished(child_id)).status == "cancelled"
