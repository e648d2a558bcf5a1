"""A run's log read and written with direct gets (one replica) or through the stream
leader (replicated streams, where a follower may answer a direct get before it has
stored the latest event): the same events, the same fencing, either way."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import pytest

from flowmesh_executor.writer import Fenced, RunWriter
from flowmesh_proto.runs import RunQueued, RunStarted, TriggerInfo
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_shared.jetstream import StreamLimits, provision_streams
from flowmesh_shared.runlife_nats import NatsRunLifecycle

pytestmark = pytest.mark.integration


def _event(kind: type[Any], run_id: str) -> Any:
    extra = {"trigger": TriggerInfo(kind="api")} if kind is RunQueued else {}
    return kind(
        tenant="acme",
        run_id=run_id,
        workflow_id="0190f3c2-0000-7000-8000-000000000000",
        version=1,
        at=datetime.now(UTC),
        **extra,
    )


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "leader"])
async def test_read_and_fenced_writes_agree_both_ways(
    nc: Any, subjects: Subjects, streams: StreamNames, direct: bool
) -> None:
    js = nc.jetstream()
    await provision_streams(js, subjects, streams, StreamLimits())
    run_id = secrets.token_hex(8)
    subject = subjects.run_events("acme", run_id)
    life = NatsRunLifecycle(nc, js, subjects, streams, direct=direct)
    assert await life.history("acme", run_id) == ([], 0)

    writer = RunWriter(js, streams.run_events, subject, 0, direct=direct)
    first = await writer.publish(_event(RunQueued, run_id))
    events, last = await life.history("acme", run_id)
    assert last == first and [type(e) for e in events] == [RunQueued]

    second = await writer.publish(_event(RunStarted, run_id))
    events, last = await life.history("acme", run_id)
    assert last == second and [type(e) for e in events] == [RunQueued, RunStarted]

    stale = RunWriter(js, streams.run_events, subject, first, direct=direct)
    with pytest.raises(Fenced):
        await stale.publish(_event(RunStarted, run_id))
