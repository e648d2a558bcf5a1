"""Live run events for SSE clients (DESIGN section 7): one ordered JetStream consumer per
client, a bounded buffer, heartbeats, and a writer that drops a client that cannot keep up.

- **Replay, then live, with no gap and no duplicate**: a client's ordered consumer starts
  on the subject's first message, after the id it resumes from (``Last-Event-ID``), or
  (the tenant stream without one) at the next new message; it delivers what the stream
  holds, then what arrives, in stream order. It sees only what the stream stored: a stale
  executor's fenced-out publish never reaches a client.
- **Bounded per client**: messages JetStream delivered wait in the client's buffer until
  they are written. A client more than ``sse_buffer_bytes`` behind, or whose socket does
  not take a write within ``sse_write_timeout_seconds``, is dropped: its connection is
  aborted, ``flowmesh_sse_dropped_clients_total{reason}`` counts it, and its consumer is
  unsubscribed. It may reconnect with ``Last-Event-ID`` and lose nothing. Every client has
  its own consumer and writer, so one that stalls delays no other.
- **Computed events between them**: a queued run's stream also says why the run waits
  (:class:`flowmesh_gateway.waiting.WaitingNotices`), in order after its ``run.queued``.
- **Cleaned up always**: whatever ends a stream (the run's end, the client leaving, a drop,
  shutdown, an error), its subscription is unsubscribed, and the server removes the
  ephemeral consumer :data:`CONSUMER_INACTIVE` seconds later. On shutdown every stream ends
  cleanly (clients reconnect elsewhere) before NATS is drained (DESIGN section 11).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress

import msgspec
import nats.errors
import structlog
from aiohttp import web
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client import CollectorRegistry, Counter, Gauge

from flowmesh_gateway.settings import GatewaySettings
from flowmesh_gateway.sse import HEARTBEAT, render
from flowmesh_gateway.waiting import WaitingNotices
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_shared.errors import Unavailable

log = structlog.get_logger("flowmesh.gateway.sse")

#: Seconds after which the server removes the consumer of a client that has gone.
CONSUMER_INACTIVE = 2.0
HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "X-Content-Type-Options": "nosniff",
}


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """What one stream sends: ``subject``'s events after the stream sequence ``after``
    (None: from the first one if ``from_start``, else only new ones), of ``workflow_id``
    only if given; ending after the terminal event if ``ends``."""

    scope: str
    subject: str
    request_id: str
    after: int | None = None
    from_start: bool = True
    workflow_id: str | None = None
    ends: bool = False


class Pacing(msgspec.Struct, frozen=True, kw_only=True):
    heartbeat: float
    write_timeout: float
    buffer_bytes: int


class StreamMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge("flowmesh_sse_streams", "Open SSE streams", ["scope"], registry=registry)
        self.dropped = Counter(
            "flowmesh_sse_dropped_clients",
            "SSE clients dropped for not keeping up",
            ["reason"],
            registry=registry,
        )
        self.events = Counter(
            "flowmesh_sse_events", "Run events sent to SSE clients", ["scope"], registry=registry
        )


class SlowClient(Exception):
    """The client did not keep up with its stream."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Feed:
    """One client's delivered, unwritten messages: (stream sequence, data), at most
    ``limit`` bytes of them (or one message, however large); beyond that the client is too
    far behind."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.waiting: deque[tuple[int, bytes]] = deque()
        self.size = 0
        self.overflowed = False
        self.stopped = False
        self.wake = asyncio.Event()

    async def deliver(self, msg: Msg) -> None:
        """The consumer's callback: never blocks, so the connection's reader never waits."""
        if self.overflowed or self.stopped:
            return
        self.waiting.append((msg.metadata.sequence.stream, msg.data))
        self.size += len(msg.data)
        if self.size > self.limit and len(self.waiting) > 1:
            self.overflowed = True
            self.waiting.clear()
        self.wake.set()

    def take(self) -> list[tuple[int, bytes]]:
        taken = list(self.waiting)
        self.waiting.clear()
        self.size = 0
        return taken

    def stop(self) -> None:
        self.stopped = True
        self.wake.set()


class LiveStreams:
    """Every SSE stream of one gateway process."""

    def __init__(self, nc: Client, settings: GatewaySettings, registry: CollectorRegistry) -> None:
        self._js: JetStreamContext = nc.jetstream(timeout=settings.rpc_timeout)
        self._stream = stream_names(settings.stream_prefix).run_events
        self.subjects = Subjects(settings.subject_prefix)
        self.pacing = Pacing(
            heartbeat=settings.sse_heartbeat_seconds,
            write_timeout=settings.sse_write_timeout_seconds,
            buffer_bytes=settings.sse_buffer_bytes,
        )
        self.metrics = StreamMetrics(registry)
        self._feeds: set[Feed] = set()
        self._closing = False

    def tenant_subject(self, tenant: str) -> str:
        """``<prefix>.<t>.runs.*``: every run of the tenant (the tenant checked as a token)."""
        return self.subjects.run_events(tenant, "_").removesuffix("_") + "*"

    async def close_all(self, _app: web.Application | None = None) -> None:
        """Shutdown: refuse new streams and end every open one (an ``on_shutdown`` hook)."""
        self._closing = True
        for feed in list(self._feeds):
            feed.stop()
        if self._feeds:
            log.info("sse.closing", streams=len(self._feeds))

    async def serve(
        self,
        request: web.Request,
        plan: Plan,
        notices: WaitingNotices | None = None,
        allowed: Callable[[], Awaitable[bool]] | None = None,
    ) -> web.StreamResponse:
        """Send ``plan``'s events (and ``notices`` among them) to the client until the
        stream ends (or, asked once a heartbeat, ``allowed`` says the caller's credential no
        longer lets it in); 503 before the first byte if JetStream cannot serve them."""
        if self._closing:
            raise Unavailable("the gateway is shutting down: connect again")
        feed = Feed(self.pacing.buffer_bytes)
        sub = await self._subscribe(plan, feed)
        self._feeds.add(feed)
        self.metrics.open.labels(plan.scope).inc()
        response = web.StreamResponse(headers={**HEADERS, "X-Request-Id": plan.request_id})
        began, reason = time.monotonic(), "ended"
        try:
            await response.prepare(request)
            await self._write(response, HEARTBEAT)  # the headers go out now
            reason = await self._pump(response, feed, plan, notices, allowed)
        except SlowClient as exc:
            reason = exc.reason
            self.metrics.dropped.labels(exc.reason).inc()
            if request.transport is not None:
                request.transport.abort()  # a client that does not read never drains a close
        except ConnectionError:
            reason = "client_gone"
        except Exception:
            reason = "error"
            log.exception("sse.failed", subject=plan.subject)
        finally:
            self._feeds.discard(feed)
            self.metrics.open.labels(plan.scope).dec()
            feed.stop()
            with suppress(nats.errors.Error):
                await sub.unsubscribe()
            log.info(
                "sse.closed",
                scope=plan.scope,
                reason=reason,
                seconds=round(time.monotonic() - began, 3),
            )
        return response

    async def _subscribe(self, plan: Plan, feed: Feed) -> JetStreamContext.PushSubscription:
        config = ConsumerConfig()
        if plan.after is not None:
            policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = plan.after + 1
        else:
            policy = DeliverPolicy.ALL if plan.from_start else DeliverPolicy.NEW
        try:
            return await self._js.subscribe(
                plan.subject,
                stream=self._stream,
                cb=feed.deliver,
                ordered_consumer=True,
                deliver_policy=policy,
                config=config,
                inactive_threshold=CONSUMER_INACTIVE,
            )
        except js_errors.APIError as exc:
            log.warning("jetstream.refused", what="sse", error=repr(exc))
            raise Unavailable(f"JetStream cannot serve the run events now: {exc}") from exc
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("nats.unavailable", what="sse", error=repr(exc))
            raise Unavailable("NATS JetStream did not answer in time (run events)") from exc

    async def _pump(
        self,
        response: web.StreamResponse,
        feed: Feed,
        plan: Plan,
        notices: WaitingNotices | None,
        allowed: Callable[[], Awaitable[bool]] | None = None,
    ) -> str:
        """Write the feed's events as they come (and ``notices`` when they have something
        to say), a heartbeat after each quiet spell; the reason the stream ended."""
        heartbeat = self.pacing.heartbeat
        seen = plan.after or 0  # the stream sequence of the last stored event taken
        wrote = checked = time.monotonic()
        while True:
            wake = wrote + heartbeat if notices is None else min(wrote + heartbeat, notices.due)
            with suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wake - time.monotonic())):
                    await feed.wake.wait()
            feed.wake.clear()
            if feed.stopped:
                return "shutdown"
            if feed.overflowed:
                raise SlowClient("lagging")
            if allowed is not None and time.monotonic() - checked >= heartbeat:
                if not await allowed():
                    return "signed_out"
                checked = time.monotonic()
            waiting = feed.take()
            rendered = render(waiting, workflow_id=plan.workflow_id, end_at_terminal=plan.ends)
            seen = waiting[-1][0] if waiting else seen
            chunk = rendered.chunk
            if notices is not None and not rendered.ended:
                chunk += await notices.next(seen, time.monotonic())
            if chunk:
                await self._write(response, chunk)
                wrote = time.monotonic()
            elif time.monotonic() - wrote >= heartbeat:
                await self._write(response, HEARTBEAT)
                wrote = time.monotonic()
            self.metrics.events.labels(plan.scope).inc(rendered.events)
            if rendered.skipped and plan.workflow_id is None:
                log.warning("sse.undecodable", subject=plan.subject, count=rendered.skipped)
            if rendered.ended:
                return "finished"

    async def _write(self, response: web.StreamResponse, chunk: bytes) -> None:
        try:
            async with asyncio.timeout(self.pacing.write_timeout):
                await response.write(chunk)
        except TimeoutError as exc:
            raise SlowClient("write_timeout") from exc
