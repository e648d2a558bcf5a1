"""A durable pull consumer whose messages are handled concurrently, a bounded number at once.

Every scheduler replica binds to the same durable consumer, so each message goes to one
replica at a time; one that dies holding messages leaves them unacked, and JetStream
hands them to another after ``ack_wait``. A handler that fails (NATS briefly gone) has its
message handed back after a second; handlers are idempotent (the runs they start are
named by what fired them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from flowmesh_shared.jetstream import ensure_consumer
from flowmesh_shared.pull import PullFeed

log = structlog.get_logger("flowmesh.scheduler.consuming")

Handler = Callable[[Msg], Awaitable[None]]
RETRY_DELAY = 1.0


class Consuming:
    def __init__(
        self,
        nc: Client,
        stream: str,
        durable: str,
        filter_subject: str,
        handle: Handler,
        *,
        ack_wait: float,
        max_in_flight: int,
    ) -> None:
        self.nc, self.stream, self.durable = nc, stream, durable
        self.filter_subject, self.handle = filter_subject, handle
        self.ack_wait, self.max_in_flight = ack_wait, max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._feed: PullFeed | None = None

    async def start(self) -> None:
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=-1,
            max_ack_pending=-1,
            filter_subject=self.filter_subject,
        )
        await ensure_consumer(self.nc.jetstream(), self.stream, config)
        self._feed = PullFeed(
            self.nc,
            self.stream,
            self.durable,
            self._accept,
            lambda: self.max_in_flight - len(self._tasks),
            batch=min(self.max_in_flight, 64),
        )
        await self._feed.start()

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - the drain bound
        """Take no more; give the messages being handled ``timeout`` seconds."""
        if self._feed is not None:
            await self._feed.stop()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
        if self._feed is not None:
            await self._feed.close()

    async def _accept(self, msg: Msg) -> None:
        task = asyncio.create_task(self._one(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _one(self, msg: Msg) -> None:
        try:
            await self.handle(msg)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "consumer.handler_failed",
                consumer=self.durable,
                subject=msg.subject,
                error=str(exc),
                error_type=type(exc).__name__,
            )
            with contextlib.suppress(nats.errors.Error):
                await msg.nak(delay=RETRY_DELAY)
        finally:
            if self._feed is not None:
                with contextlib.suppress(nats.errors.Error):
                    await self._feed.refill()
