"""Reading what started: every run event of a tenant, straight from the run-events stream."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from nats.js.errors import NotFoundError

from flowmesh_proto.runs import RunEvent, RunQueued, RunScheduled, run_event_decoder
from flowmesh_proto.subjects import StreamNames, Subjects


async def tenant_runs(
    nc: Any, subjects: Subjects, streams: StreamNames, tenant: str
) -> dict[str, list[RunEvent]]:
    """``run_id -> events`` (in order) of every run of ``tenant``."""
    js = nc.jetstream()
    runs: dict[str, list[RunEvent]] = defaultdict(list)
    subject = f"{subjects.prefix}.{tenant}.runs.*"
    seq = 0
    while True:
        try:
            msg = await js.get_msg(streams.run_events, seq=seq + 1, subject=subject, next=True)
        except NotFoundError:
            return dict(runs)
        event = run_event_decoder.decode(msg.data or b"")
        runs[event.run_id].append(event)
        seq = msg.seq or 0


def first_events(runs: dict[str, list[RunEvent]]) -> dict[str, RunQueued | RunScheduled]:
    return {
        run_id: events[0]
        for run_id, events in runs.items()
        if isinstance(events[0], (RunQueued, RunScheduled))
    }


def kinds(events: list[RunEvent]) -> list[str]:
    return [str(type(event).__struct_config__.tag) for event in events]
