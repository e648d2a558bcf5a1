"""A continuous pull from a durable JetStream consumer: each message handed over as it arrives.

nats-py's ``fetch`` returns a batch only when it is full, when the server says the request
ended, or at its timeout; a run request arriving alone waits for one of those (about a
millisecond here, at best). This feed instead keeps pull requests open for as many
messages as there is room for (``room()``) and passes each message on at once. The room
is topped up whenever it drains by half; a request's end (``408``/``409`` status, with
the count it did not deliver) gives its count back; idle heartbeats prove the requests
are alive, and when they stop (NATS restarted and forgot them) the feed asks afresh.

Used by the executor (run requests, one message at a time) and by the registry's
projection (run events, gathered into batches).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = structlog.get_logger("flowmesh.pull")

_STATUS = "Status"
_PENDING = "Nats-Pending-Messages"


class PullFeed:
    def __init__(
        self,
        nc: Client,
        stream: str,
        consumer: str,
        on_message: Callable[[Msg], Awaitable[None]],
        room: Callable[[], int],
        *,
        batch: int = 64,
        expires: float = 10.0,
        heartbeat: float = 1.0,
        api_prefix: str = "$JS.API",
    ) -> None:
        self.nc, self.on_message, self.room = nc, on_message, room
        self.batch, self.expires, self.heartbeat = batch, expires, heartbeat
        self._next = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = ""
        self._sub: Subscription | None = None
        self._outstanding = 0
        self._last_heard = time.monotonic()
        self._watchdog: asyncio.Task[None] | None = None
        self.stopping = False

    async def start(self) -> None:
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(self._inbox, cb=self._on_msg)
        self._watchdog = asyncio.create_task(self._watch(), name=f"pull.watchdog.{self._next}")
        await self.refill()

    def pause(self) -> None:
        """Ask for nothing more for now; messages already on their way are handed back."""
        self.stopping = True

    async def resume(self) -> None:
        self.stopping = False
        await self.refill()

    async def stop(self) -> None:
        """Ask for nothing more; messages already on their way are handed back (nak)."""
        self.stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None

    async def refill(self) -> None:
        """Ask for more when the open requests cover less than half of the room."""
        if self.stopping or self._sub is None:
            return
        room = self.room()
        if room <= 0 or self._outstanding * 2 >= min(room, self.batch):
            return
        wanted = min(self.batch, room) - self._outstanding
        if wanted <= 0:
            return
        request = {
            "batch": wanted,
            "expires": int(self.expires * 1e9),
            "idle_heartbeat": int(self.heartbeat * 1e9),
        }
        try:
            await self.nc.publish(self._next, msgspec.json.encode(request), reply=self._inbox)
        except nats.errors.Error as exc:
            log.warning("pull.request_failed", error=type(exc).__name__)
            return
        self._outstanding += wanted

    async def _on_msg(self, msg: Msg) -> None:
        self._last_heard = time.monotonic()
        headers = msg.headers or {}
        status = headers.get(_STATUS)
        if status is not None and not msg.data:
            if status != "100":  # 100: an idle heartbeat; 408/409: a request ended early
                undelivered = int(headers.get(_PENDING, "0") or 0)
                self._outstanding = max(0, self._outstanding - undelivered)
                await self.refill()
            return
        self._outstanding = max(0, self._outstanding - 1)
        if self.stopping:
            with contextlib.suppress(nats.errors.Error):
                await msg.nak()
            return
        await self.on_message(msg)
        await self.refill()

    async def _watch(self) -> None:
        """Ask afresh when the open requests went silent (a restarted server forgets them)."""
        while True:
            await asyncio.sleep(self.heartbeat)
            silent = time.monotonic() - self._last_heard > 3 * self.heartbeat
            if silent and self._outstanding:
                log.info("pull.requests_lost", outstanding=self._outstanding)
                self._outstanding = 0
            await self.refill()
