"""For the SSE tests: an SSE reader over aiohttp, an executor double that publishes a run's
events as the executor does (fenced), and what JetStream holds, to compare against."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec
from nats.aio.client import Client as Nats
from nats.js.errors import NotFoundError

from flowmesh_proto import headers as h
from flowmesh_proto.ids import new_run_id
from flowmesh_proto.runs import (
    RunEvent,
    RunQueued,
    RunStarted,
    RunSucceeded,
    StepBatch,
    StepLog,
    StepStarted,
    StepSucceeded,
    TriggerInfo,
)
from flowmesh_proto.subjects import StreamNames, Subjects


class Event(msgspec.Struct, frozen=True):
    """One SSE event as a client sees it; ``at`` is when it was read (monotonic). ``id`` is
    0 for an event sent with no ``id:`` (computed, not stored: a queued run's
    ``run.waiting``)."""

    id: int
    kind: str
    data: Any
    at: float


class SseReader:
    """Reads an open ``text/event-stream`` response: events, and counts comments. Events
    with no ``id:`` are returned only when ``computed``; else they are kept aside in
    :attr:`computed_events` (the stored events are what most tests look at)."""

    def __init__(self, response: aiohttp.ClientResponse, *, computed: bool = False) -> None:
        self.response = response
        self.comments = 0
        self.ended = False
        self.computed = computed
        self.computed_events: list[Event] = []

    async def next(self) -> Event | None:
        """The next event; None once the server has ended the stream."""
        fields: dict[str, str] = {}
        data: list[str] = []
        while True:
            raw = await self.response.content.readline()
            if not raw:
                self.ended = True
                return None
            line = raw.decode().rstrip("\n").rstrip("\r")
            if line == "":
                if data:
                    event = Event(
                        int(fields.get("id", "0")),
                        fields["event"],
                        msgspec.json.decode("\n".join(data)),
                        time.monotonic(),
                    )
                    if "id" in fields or self.computed:
                        return event
                    self.computed_events.append(event)
                    fields, data = {}, []
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value

    async def events(self, count: int, timeout: float = 10.0) -> list[Event]:  # noqa: ASYNC109
        """Exactly ``count`` events (fails if the stream ends or stalls first)."""
        found: list[Event] = []
        async with asyncio.timeout(timeout):
            while len(found) < count:
                event = await self.next()
                assert event is not None, f"the stream ended after {len(found)} of {count}"
                found.append(event)
        return found

    async def rest(self, timeout: float = 10.0) -> list[Event]:  # noqa: ASYNC109
        """Every event until the server ends the stream."""
        found: list[Event] = []
        async with asyncio.timeout(timeout):
            while (event := await self.next()) is not None:
                found.append(event)
        return found


@asynccontextmanager
async def sse(
    session: aiohttp.ClientSession,
    url: str,
    token: str | None,
    headers: dict[str, str] | None = None,
    *,
    computed: bool = False,
) -> AsyncIterator[SseReader]:
    sent = {"Accept": "text/event-stream", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with session.get(url, headers=sent, timeout=aiohttp.ClientTimeout(total=None)) as resp:
        yield SseReader(resp, computed=computed)


def run_base(tenant: str, workflow_id: str, run_id: str | None = None) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "run_id": run_id or str(new_run_id()),
        "workflow_id": workflow_id,
        "version": 1,
        "at": datetime.now(UTC),
    }


def script(base: dict[str, Any]) -> list[RunEvent]:
    """A run's whole life as the executor publishes it: a ``steps`` batch in the middle."""
    return [
        RunQueued(**base, trigger=TriggerInfo(kind="api", data={"n": 1}), input={"n": 1}),
        RunStarted(**base, executor="double"),
        StepStarted(**base, node_id="fetch"),
        StepBatch(
            **base,
            events=[
                StepSucceeded(**base, node_id="fetch", output={"rows": 3}),
                StepStarted(**base, node_id="store"),
                StepLog(**base, node_id="store", message="storing\nthree rows"),
            ],
        ),
        StepLog(**base, node_id="store", message="half way"),
        StepSucceeded(**base, node_id="store", output={"stored": 3}),
        RunSucceeded(**base, output={"stored": 3}),
    ]


def kind_of(event: RunEvent) -> str:
    return str(type(event).__struct_config__.tag)


class ExecutorDouble:
    """Publishes run events as the executor does: fenced on the subject's last sequence."""

    def __init__(self, nc: Nats, subjects: Subjects, streams: StreamNames) -> None:
        self.js, self.subjects, self.streams = nc.jetstream(), subjects, streams
        self._last: dict[str, int] = {}
        #: When each published sequence was acknowledged (monotonic).
        self.published_at: dict[int, float] = {}

    async def publish(self, event: RunEvent, payload: bytes | None = None) -> int:
        """Store ``event`` (or raw ``payload`` on its subject) and answer its sequence."""
        subject = self.subjects.run_events(event.tenant, event.run_id)
        last = self._last.get(subject, 0)
        ack = await self.js.publish(
            subject,
            payload if payload is not None else msgspec.json.encode(event),
            stream=self.streams.run_events,
            headers={h.EXPECTED_LAST_SUBJECT_SEQUENCE: str(last)},
        )
        self._last[subject] = ack.seq
        self.published_at[ack.seq] = time.monotonic()
        return ack.seq

    async def publish_all(self, events: list[RunEvent]) -> list[int]:
        return [await self.publish(event) for event in events]

    async def stored(self, subject: str) -> list[tuple[int, bytes]]:
        """What the stream holds on ``subject`` (wildcards allowed), in order."""
        found: list[tuple[int, bytes]] = []
        seq = 0
        while True:
            try:
                msg = await self.js.get_msg(
                    self.streams.run_events, seq=seq + 1, subject=subject, next=True
                )
            except NotFoundError:
                return found
            seq = msg.seq or 0
            found.append((seq, msg.data or b""))

    async def consumers_on(self, tenant: str) -> int:
        """Consumers of the run events stream that read this tenant's subjects."""
        prefix = self.subjects.run_events(tenant, "_").removesuffix("_")
        infos = await self.js.consumers_info(self.streams.run_events)
        return sum(1 for info in infos if (info.config.filter_subject or "").startswith(prefix))
