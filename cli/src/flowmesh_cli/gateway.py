"""The gateway's HTTP API as the CLI uses it: execute a workflow, follow a run's events.

Answers that are not what was asked become our errors here (problem+json read for its
code and detail): 401/403 and other refusals :class:`Refused`, 404 :class:`NotFound`,
429/502/503/504 :class:`Transient`, other failures and network errors
:class:`Unavailable`.

``run_events`` follows ``GET /runs/{id}/events`` (Server-Sent Events) until the run's
terminal event. A connection that drops, ends early, goes quiet for ``idle_timeout``
(the gateway sends heartbeat comments) or answers a transient error is opened again
with ``Last-Event-ID`` after a growing delay; ``retries`` failures in a row without an
event in between give up (:class:`Unavailable`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
import msgspec

from flowmesh_cli.config import Target
from flowmesh_cli.errors import CliError, NotFound, Refused, Transient, Unavailable
from flowmesh_cli.sse import ServerSentEvent, SseParser
from flowmesh_proto.errors import Problem
from flowmesh_proto.http import ExecuteBody, RunAccepted
from flowmesh_proto.runs import (
    RunCancelled,
    RunEvent,
    RunFailed,
    RunSucceeded,
    RunTimedOut,
    run_event_decoder,
)

_problem_decoder = msgspec.json.Decoder(Problem)
_accepted_decoder = msgspec.json.Decoder(RunAccepted)
_encoder = msgspec.json.Encoder()
_TRANSIENT = frozenset({429, 502, 503, 504})
_MAX_ERROR_BODY = 64 * 1024


class StreamPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How hard ``run_events`` tries to keep a stream."""

    retries: int = 5  # failures in a row before giving up
    first_delay: float = 0.5  # seconds before the first reconnect (or the stream's ``retry``)
    max_delay: float = 10.0
    idle_timeout: float = 60.0  # seconds without a byte (heartbeats count) before reconnecting
    connect_timeout: float = 10.0

    def delay(self, failures: int, retry_ms: int | None = None) -> float:
        """Seconds to wait before reconnect number ``failures`` (1, 2, ...)."""
        first = retry_ms / 1000 if retry_ms is not None else self.first_delay
        return float(min(self.max_delay, first * 2 ** (failures - 1)))


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One run event of the stream, with the stream sequence it came under (if numeric)."""

    event: RunEvent
    seq: int | None


class Reconnecting(msgspec.Struct, frozen=True, kw_only=True):
    """The stream was lost; ``attempt`` (of ``retries``) starts in ``delay`` seconds."""

    reason: str
    attempt: int
    retries: int
    delay: float
    last_event_id: str


class Skipped(msgspec.Struct, frozen=True, kw_only=True):
    """An event this version of flowmesh cannot read (a newer gateway's kind, perhaps)."""

    sse_event: str
    id: str
    reason: str


StreamItem = Delivery | Reconnecting | Skipped


class Gateway:
    """Calls to one gateway as one tenant, over ``session``."""

    def __init__(self, session: aiohttp.ClientSession, target: Target) -> None:
        self._session = session
        self._target = target

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._target.api_key}", **extra}

    async def execute(
        self,
        workflow_id: str,
        body: ExecuteBody,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - passed on to aiohttp
    ) -> RunAccepted:
        """``POST /workflows/{id}/execute``: the new run's id (202)."""
        url = self._target.api("workflows", workflow_id, "execute")
        headers = self._headers(**{"Content-Type": "application/json"})
        try:
            async with self._session.post(
                url,
                data=_encoder.encode(_without_unset(body)),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                if resp.status not in (200, 202):
                    raise await refusal(resp, f"workflow {workflow_id}")
                data = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"cannot reach {self._target.url}: {_reason(exc)}") from exc
        try:
            return _accepted_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise Unavailable(f"the gateway answered execute with {data[:200]!r}") from exc

    async def run_events(
        self, run_id: str, policy: StreamPolicy, last_event_id: str = ""
    ) -> AsyncGenerator[StreamItem, None]:
        """The run's events from its start (or after ``last_event_id``) to its terminal one."""
        failures, connected = 0, False
        while True:
            parser = SseParser(last_event_id)
            retry_after: float | None = None
            try:
                async with self._open_stream(run_id, policy, last_event_id) as resp:
                    connected = True
                    await _expect_stream(resp, f"run {run_id}")
                    async for chunk in resp.content.iter_any():
                        for message in parser.feed(chunk):
                            failures = 0
                            for item in _items(message):
                                yield item
                                if isinstance(item, Delivery) and _ends_run(item.event):
                                    return
                reason = "the stream ended before the run did"
            except Transient as exc:
                reason, retry_after = exc.message, exc.retry_after
            except aiohttp.ClientConnectorError as exc:
                if not connected:  # a wrong URL, or no gateway: say so at once
                    raise Unavailable(f"cannot reach {self._target.url}: {_reason(exc)}") from exc
                reason = _reason(exc)
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = _reason(exc)
            last_event_id = parser.last_event_id  # the last whole event's: resume after it
            failures += 1
            if failures > policy.retries:
                raise Unavailable(
                    f"lost the event stream of run {run_id} ({reason}) "
                    f"and {policy.retries} reconnects failed"
                )
            if retry_after is None:
                retry_after = policy.delay(failures, parser.retry_ms)
            yield Reconnecting(
                reason=reason,
                attempt=failures,
                retries=policy.retries,
                delay=retry_after,
                last_event_id=last_event_id,
            )
            await asyncio.sleep(retry_after)

    @contextlib.asynccontextmanager
    async def _open_stream(
        self, run_id: str, policy: StreamPolicy, last_event_id: str
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        headers = self._headers(Accept="text/event-stream", **{"Cache-Control": "no-cache"})
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=policy.connect_timeout, sock_read=policy.idle_timeout
        )
        url = self._target.api("runs", run_id, "events")
        async with self._session.get(url, headers=headers, timeout=timeout) as resp:
            yield resp


def _items(message: ServerSentEvent) -> list[StreamItem]:
    try:
        event = run_event_decoder.decode(message.data)
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
        return [Skipped(sse_event=message.event, id=message.id, reason=str(exc))]
    seq = int(message.id) if message.id.isascii() and message.id.isdigit() else None
    return [Delivery(event=event, seq=seq)]


def _without_unset(body: ExecuteBody) -> dict[str, Any]:
    """The body as JSON sends it: options not given are left out, not sent as null."""
    fields = msgspec.structs.asdict(body)
    return {k: v for k, v in fields.items() if k == "input" or v is not None}


def _ends_run(event: RunEvent) -> bool:
    return isinstance(event, RunSucceeded | RunFailed | RunCancelled | RunTimedOut)


async def _expect_stream(resp: aiohttp.ClientResponse, what: str) -> None:
    if resp.status != 200:
        raise await refusal(resp, what)
    if resp.content_type != "text/event-stream":
        raise Unavailable(
            f"the gateway answered the event stream of {what} with {resp.content_type or 'no'} "
            "content, not text/event-stream"
        )


async def refusal(resp: aiohttp.ClientResponse, what: str) -> CliError:
    """Our error for an answer other than the one asked for (its problem+json read)."""
    body = await resp.content.read(_MAX_ERROR_BODY)
    problem = _problem(body)
    code = problem.code if problem else (resp.reason or "")
    detail = (problem.detail or problem.title) if problem else body.decode(errors="replace")
    said = f"{resp.status} {code}".strip() + (f": {detail}" if detail else "")
    match resp.status:
        case 401:
            return Refused(f"the gateway did not accept the API key ({said})")
        case 403:
            return Refused(f"not allowed ({said})")
        case 404:
            return NotFound(f"{what} not found ({said})")
        case status if status in _TRANSIENT:
            return Transient(f"the gateway is busy ({said})", retry_after=_retry_after(resp))
        case status if 400 <= status < 500:
            return Refused(f"the gateway refused the request ({said})")
    return Unavailable(f"the gateway failed ({said})")


def _problem(body: bytes) -> Problem | None:
    try:
        return _problem_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeError, RecursionError):
        return None


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = resp.headers.get("Retry-After", "")
    return float(value) if value.isascii() and value.isdigit() else None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
