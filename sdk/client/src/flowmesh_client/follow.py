"""Following a Server-Sent Events stream of run events, through dropped connections.

A connection that drops, ends early, goes quiet for ``idle_timeout`` (the gateway sends
heartbeat comments) or answers 429/502/503/504 is opened again with ``Last-Event-ID`` (the
last whole event's id) after a growing delay: nothing is repeated, nothing lost.
``retries`` failures in a row without an event in between give up (:class:`StreamLost`).
A run's stream ends after its terminal event (or with 204 when resumed after it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

import aiohttp
import msgspec

from flowmesh_client.errors import ConnectionFailed, FlowmeshError
from flowmesh_client.retry import RETRIED_STATUSES
from flowmesh_client.sse import ServerSentEvent, SseParser
from flowmesh_client.transport import Query, Transport, reason
from flowmesh_proto.runs import (
    RunCancelled,
    RunEvent,
    RunFailed,
    RunSucceeded,
    RunTimedOut,
    run_event_decoder,
)


class StreamPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How hard a follow tries to keep its stream."""

    retries: int = 5  # failures in a row before giving up
    first_delay: float = 0.5  # seconds before the first reconnect (or the stream's ``retry``)
    max_delay: float = 10.0
    idle_timeout: float = 60.0  # seconds without a byte (heartbeats count) before reconnecting

    def delay(self, failures: int, retry_ms: int | None = None) -> float:
        """Seconds to wait before reconnect number ``failures`` (1, 2, ...)."""
        first = retry_ms / 1000 if retry_ms is not None else self.first_delay
        return float(min(self.max_delay, first * 2 ** (failures - 1)))


class StreamLost(ConnectionFailed):
    """The event stream was lost, and reconnecting failed as often as allowed."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.args = (reason,)


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One run event of the stream, with the stream sequence it came under (if numeric)."""

    event: RunEvent
    seq: int | None
    id: str = ""


class Reconnecting(msgspec.Struct, frozen=True, kw_only=True):
    """The stream was lost; ``attempt`` (of ``retries``) starts in ``delay`` seconds."""

    reason: str
    attempt: int
    retries: int
    delay: float
    last_event_id: str


class Skipped(msgspec.Struct, frozen=True, kw_only=True):
    """An event this version cannot read (a newer gateway's kind, perhaps)."""

    sse_event: str
    id: str
    reason: str


StreamItem = Delivery | Reconnecting | Skipped


def ends_run(event: RunEvent) -> bool:
    """Whether ``event`` is a run's last."""
    return isinstance(event, RunSucceeded | RunFailed | RunCancelled | RunTimedOut)


async def follow(
    transport: Transport,
    path: str,
    policy: StreamPolicy,
    *,
    last_event_id: str = "",
    query: Query | None = None,
    until: Callable[[RunEvent], bool] | None = None,
    what: str = "",
) -> AsyncGenerator[StreamItem, None]:
    """The stream's items after ``last_event_id``, until an event ``until`` says is the last
    (or the server says there is no more: 204)."""
    failures, connected = 0, False
    while True:
        parser = SseParser(last_event_id)
        wait: float | None = None
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            async with transport.stream(
                path, query=query, headers=headers, idle_timeout=policy.idle_timeout
            ) as resp:
                connected = True
                if resp.status == 204:
                    return
                _expect_stream(resp)
                async for chunk in resp.content.iter_any():
                    for message in parser.feed(chunk):
                        failures = 0
                        item = _item(message)
                        yield item
                        if isinstance(item, Delivery) and until is not None and until(item.event):
                            return
            why = "the stream ended before the run did"
        except FlowmeshError as exc:
            if exc.status not in RETRIED_STATUSES:
                raise
            why, wait = exc.message, getattr(exc, "retry_after", None)
        except aiohttp.ClientConnectorError as exc:
            if not connected:  # a wrong URL, or no gateway: say so at once
                raise ConnectionFailed(transport.target.url, reason(exc)) from exc
            why = reason(exc)
        except (aiohttp.ClientError, TimeoutError) as exc:
            why = reason(exc)
        last_event_id = parser.last_event_id  # the last whole event's: resume after it
        failures += 1
        if failures > policy.retries:
            raise StreamLost(
                transport.target.url,
                f"lost the event stream of {what or path} ({why}) "
                f"and {policy.retries} reconnects failed",
            )
        if wait is None:
            wait = policy.delay(failures, parser.retry_ms)
        yield Reconnecting(
            reason=why,
            attempt=failures,
            retries=policy.retries,
            delay=wait,
            last_event_id=last_event_id,
        )
        await asyncio.sleep(wait)


def _item(message: ServerSentEvent) -> StreamItem:
    try:
        event = run_event_decoder.decode(message.data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeError, RecursionError) as exc:
        return Skipped(sse_event=message.event, id=message.id, reason=str(exc))
    seq = int(message.id) if message.id.isascii() and message.id.isdigit() else None
    return Delivery(event=event, seq=seq, id=message.id)


def _expect_stream(resp: aiohttp.ClientResponse) -> None:
    if resp.content_type != "text/event-stream":
        raise FlowmeshError(
            f"the gateway answered an event stream with {resp.content_type or 'no'} content, "
            "not text/event-stream",
            status=resp.status,
        )
