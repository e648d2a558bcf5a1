"""The SSE wire format of run events (flowmesh_gateway.sse): frames, ids, batches, ends;
and a client's bounded feed (flowmesh_gateway.streams.Feed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pytest
from nats.aio.msg import Msg

from flowmesh_gateway.sse import (
    HEARTBEAT,
    MAX_EVENT_ID,
    envelope,
    frame,
    parse_event_id,
    render,
)
from flowmesh_gateway.streams import Feed
from flowmesh_proto.runs import (
    TERMINAL_RUN_KINDS,
    RunQueued,
    RunSucceeded,
    StepBatch,
    StepLog,
    StepStarted,
    StepSucceeded,
    TriggerInfo,
)

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
BASE = {"tenant": "acme", "run_id": "r1", "workflow_id": "w1", "version": 1, "at": AT}


def parse(stream: bytes) -> list[dict[str, str]]:
    """A reader as the HTML standard's EventSource reads: fields, comments, blank lines."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    data: list[str] = []
    for line in stream.decode().split("\n"):
        if line == "":
            if data:
                events.append({**current, "data": "\n".join(data)})
            current, data = {}, []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                current[name] = value
    return events


def test_an_event_is_its_sequence_kind_and_json() -> None:
    data = msgspec.json.encode(RunQueued(**BASE, trigger=TriggerInfo(kind="api")))
    assert frame(42, "run.queued", data) == b"id: 42\nevent: run.queued\ndata: " + data + b"\n\n"
    (event,) = parse(frame(42, "run.queued", data))
    assert event == {"id": "42", "event": "run.queued", "data": data.decode()}


def test_json_with_line_breaks_arrives_as_the_same_value() -> None:
    value = {"kind": "step.log", "message": "two\nlines", "nested": {"a": [1, 2]}}
    pretty = json.dumps(value, indent=2).replace("\n  ", "\r\n  ", 1).encode()
    chunk = frame(7, "step.log", pretty)
    assert chunk.count(b"\ndata: ") > 3 and b"\r" not in chunk  # no bare line break is sent
    (event,) = parse(chunk)
    assert json.loads(event["data"]) == value and event["id"] == "7"


def test_a_steps_batch_is_one_event_with_one_id() -> None:
    batch = StepBatch(
        **BASE,
        events=[
            StepSucceeded(**BASE, node_id="a", output={"x": 1}),
            StepStarted(**BASE, node_id="b"),
            StepLog(**BASE, node_id="b", message="hello"),
        ],
    )
    rendered = render([(9, msgspec.json.encode(batch))], workflow_id=None, end_at_terminal=True)
    (event,) = parse(rendered.chunk)
    assert (event["id"], event["event"]) == ("9", "steps")
    kinds = [inner["kind"] for inner in json.loads(event["data"])["events"]]
    assert kinds == ["step.succeeded", "step.started", "step.log"]
    assert (rendered.events, rendered.ended, rendered.skipped) == (1, False, 0)


def test_rendering_stops_after_the_terminal_event_only_when_asked() -> None:
    messages = [
        (1, msgspec.json.encode(RunQueued(**BASE, trigger=TriggerInfo(kind="api")))),
        (3, msgspec.json.encode(RunSucceeded(**BASE, output=1))),
        (5, msgspec.json.encode(StepLog(**BASE, node_id="late", message="after the end"))),
    ]
    ended = render(messages, workflow_id=None, end_at_terminal=True)
    assert [e["id"] for e in parse(ended.chunk)] == ["1", "3"] and ended.ended
    tenant = render(messages, workflow_id=None, end_at_terminal=False)
    assert [e["id"] for e in parse(tenant.chunk)] == ["1", "3", "5"] and not tenant.ended
    assert {"run.succeeded", "run.failed", "run.cancelled", "run.timed_out"} == TERMINAL_RUN_KINDS


def test_a_workflow_filter_and_messages_that_are_not_run_events_are_skipped() -> None:
    other = {**BASE, "workflow_id": "w2"}
    messages = [
        (1, msgspec.json.encode(StepLog(**BASE, node_id="n", message="mine"))),
        (2, msgspec.json.encode(StepLog(**other, node_id="n", message="theirs"))),
        (3, b"not json"),
        (4, b'{"kind": "run.x\\ndata: forged", "workflow_id": "w1"}'),
        (5, b'{"kind": 5}'),
        (6, b"[1, 2]"),
    ]
    rendered = render(messages, workflow_id="w1", end_at_terminal=False)
    assert [e["id"] for e in parse(rendered.chunk)] == ["1"]
    assert (rendered.events, rendered.skipped) == (1, 5)
    assert envelope(b'{"kind": "run.x\\ndata: forged"}') is None
    assert envelope(b'{"kind": "run.someday", "extra": true}') is not None  # newer kinds pass


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, None), ("", None), ("0", 0), ("17", 17), ("007", 7)]
)
def test_an_event_id_is_a_stream_sequence(raw: str | None, expected: int | None) -> None:
    assert parse_event_id(raw) == expected
    assert parse_event_id(str(MAX_EVENT_ID)) == MAX_EVENT_ID


@pytest.mark.parametrize(
    "raw", ["-1", "+1", " 1", "1.5", "1e3", "abc", "1_000", "٣", str(MAX_EVENT_ID + 1), "9" * 30]
)
def test_anything_else_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="stream sequence"):
        parse_event_id(raw)


def test_the_heartbeat_is_a_comment() -> None:
    assert HEARTBEAT.startswith(b":") and HEARTBEAT.endswith(b"\n\n")
    assert parse(HEARTBEAT) == []


def delivered(seq: int, data: bytes) -> Msg:
    """A message as an ordered consumer delivers it (its reply subject holds its sequence)."""
    return Msg(
        _client=None, subject="fm.t.runs.r", reply=f"$JS.ACK.S.C.1.{seq}.{seq}.0.0", data=data
    )  # type: ignore[arg-type]


async def test_a_feed_holds_what_is_not_written_yet_up_to_its_bound() -> None:
    feed = Feed(limit=100)
    await feed.deliver(delivered(3, b"x" * 60))
    assert feed.wake.is_set() and not feed.overflowed
    assert feed.take() == [(3, b"x" * 60)] and feed.size == 0
    await feed.deliver(delivered(5, b"y" * 500))  # one message passes, however large
    assert not feed.overflowed
    await feed.deliver(delivered(6, b"z"))
    assert feed.overflowed and not feed.waiting  # behind by more: the client is dropped
    await feed.deliver(delivered(7, b"z"))
    assert not feed.waiting  # and nothing more is kept for it


async def test_a_stopped_feed_takes_nothing_more() -> None:
    feed = Feed(limit=100)
    feed.stop()
    assert feed.stopped and feed.wake.is_set()
    await feed.deliver(delivered(1, b"{}"))
    assert feed.take() == []
