"""What the executor does to other runs through the run lifecycle, on its in-memory twin
(:class:`~flowmesh_shared.runlife_memory.MemoryRunLifecycle`, held to the NATS one by
``tests/integration/test_runlife.py``): a concurrency slot's questions, wakes and cancels
(:class:`~flowmesh_executor.control.RunControl`), and child runs started and awaited
(:class:`~flowmesh_executor.children.ChildRuns`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from flowmesh_executor.children import ChildRuns, child_run_id
from flowmesh_executor.control import RunControl
from flowmesh_executor.nodes.base import StepCall, StepError
from flowmesh_proto.msgids import rerequest_msg_id
from flowmesh_proto.runs import (
    RunCancelled,
    RunError,
    RunEvent,
    RunFailed,
    RunQueued,
    RunRequest,
    RunSucceeded,
    RunTimedOut,
    TriggerInfo,
    control_key,
)
from flowmesh_proto.workflow import Definition, definition_from_builtins
from flowmesh_shared.errors import NotFound
from flowmesh_shared.runlife_memory import MemoryRunLifecycle
from tests.helpers import until

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PARENT_WF = "0190f3c2-0000-7000-8000-000000000001"
CHILD_WF = "0190f3c2-0000-7000-8000-000000000002"


def _request(run_id: str = "r1") -> RunRequest:
    return RunRequest(
        tenant="acme",
        run_id=run_id,
        workflow_id=PARENT_WF,
        version=1,
        trigger=TriggerInfo(kind="api"),
        input={"n": 1},
        requested_at=AT,
    )


def _base(run_id: str, workflow_id: str = PARENT_WF, version: int = 1) -> dict[str, Any]:
    return {"tenant": "acme", "run_id": run_id, "workflow_id": workflow_id, "version": version}


async def test_run_control_asks_wakes_and_cancels_by_run_control_key() -> None:
    life = MemoryRunLifecycle()
    control = RunControl(life)
    key = control_key("acme", "r1")
    assert await control.finished(key)  # no such run: it holds no slot
    await life.start(_request(), AT)
    assert not await control.finished(key)

    await control.wake(key, "slot:abc")
    assert [(s.msg_id, s.request.run_id) for s in life.requests] == [
        ("r1", "r1"),
        (rerequest_msg_id("slot:abc", "r1"), "r1"),
    ]
    await control.wake(key, "slot:abc")  # the same wake again: dropped as a duplicate
    assert len(life.requests) == 2

    await control.cancel(key, "its slot was taken")
    recorded = life.control[key]
    assert (recorded.tenant, recorded.run_id, recorded.reason, recorded.by) == (
        "acme",
        "r1",
        "its slot was taken",
        "service:executor",
    )
    assert life.cancels == [recorded]

    await life.append(RunSucceeded(**_base("r1"), at=AT, output=None))
    assert await control.finished(key)


class Versions:
    """The registry's workflows, as the executor's definitions cache answers."""

    def __init__(self, versions: dict[str, int]) -> None:
        self.versions = versions

    async def get(self, tenant: str, workflow_id: str, version: int | None) -> tuple[int, Any]:
        if workflow_id not in self.versions:
            raise NotFound(f"workflow {workflow_id} not found")
        return version or self.versions[workflow_id], None


def _definition() -> Definition:
    return definition_from_builtins(
        {
            "name": "parent",
            "nodes": [{"id": "sub", "type": "workflow", "parameters": {"workflow_id": CHILD_WF}}],
            "edges": [],
        }
    )


def _call(attempt: int = 1) -> StepCall:
    return StepCall(
        tenant="acme",
        run_id="parent",
        workflow_id=PARENT_WF,
        version=1,
        node=_definition().nodes[0],
        attempt=attempt,
        idempotency_key="parent:sub",
        parameters={},
        variables={},
        started_at=AT,
        deadline=None,
        secrets={},
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


async def test_a_child_run_is_started_awaited_and_found_again_by_a_resumed_attempt() -> None:
    life = MemoryRunLifecycle()
    children = ChildRuns(life, Versions({CHILD_WF: 3}))
    child = child_run_id("parent", "sub", 1, AT)
    running = asyncio.create_task(children.run_child(_call(), CHILD_WF, None, {"n": 2}, "sub"))
    sent = (await until(lambda: life.requests))[0]
    assert sent.msg_id == child and sent.request.run_id == child
    assert (sent.request.workflow_id, sent.request.version) == (CHILD_WF, 3)
    assert sent.request.trigger == TriggerInfo(kind="workflow", data={"n": 2})
    assert sent.trace == {"traceparent": _call().traceparent}
    opened = await life.last("acme", child)
    assert opened is not None and isinstance(opened.event, RunQueued)
    assert not running.done()  # it waits for the child's end

    await life.append(RunSucceeded(**_base(child, CHILD_WF, 3), at=AT, output={"ok": True}))
    assert await asyncio.wait_for(running, 1) == {"ok": True}
    # The same attempt again (its executor died after the child ended): the child is found
    # ended, nothing is sent again.
    again = await children.run_child(_call(), CHILD_WF, None, {"n": 2}, "sub")
    assert again == {"ok": True} and len(life.requests) == 1


@pytest.mark.parametrize(
    ("end", "error_class"),
    [
        (RunFailed(**_base("c"), at=AT, error=RunError(code="X", message="no")), "ChildRunFailed"),
        (RunCancelled(**_base("c"), at=AT, reason="enough"), "ChildRunCancelled"),
        (RunTimedOut(**_base("c"), at=AT), "ChildRunTimedOut"),
    ],
)
async def test_a_child_that_did_not_succeed_fails_the_step(end: RunEvent, error_class: str) -> None:
    life = MemoryRunLifecycle()
    children = ChildRuns(life, Versions({CHILD_WF: 1}))
    child = child_run_id("parent", "sub", 2, AT)
    running = asyncio.create_task(children.run_child(_call(2), CHILD_WF, 1, None, "sub"))
    await until(lambda: life.requests)
    await life.append(_retarget(end, child))
    with pytest.raises(StepError) as failed:
        await asyncio.wait_for(running, 1)
    assert failed.value.error_class == error_class and child in failed.value.message


def _retarget(event: RunEvent, run_id: str) -> RunEvent:
    return msgspec.structs.replace(event, run_id=run_id, workflow_id=CHILD_WF)


async def test_a_child_that_cannot_start_fails_the_step_and_opens_nothing() -> None:
    life = MemoryRunLifecycle(max_message_bytes=2000)
    children = ChildRuns(life, Versions({CHILD_WF: 1}))
    with pytest.raises(StepError) as too_large:
        await children.run_child(_call(), CHILD_WF, None, {"blob": "x" * 2000}, "sub")
    assert too_large.value.error_class == "ChildRunTooLarge"
    with pytest.raises(StepError) as missing:
        await children.run_child(_call(), "0190f3c2-0000-7000-8000-00000000dead", None, {}, "sub")
    assert missing.value.error_class == "ChildWorkflowUnavailable"
    assert await life.last("acme", child_run_id("parent", "sub", 1, AT)) is None
    assert life.requests == []
