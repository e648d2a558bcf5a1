"""A worker: serves the task queues of one tenant, a bounded number of tasks at a time.

Each queue is one durable pull consumer ``tasks_<tenant>_<queue>`` on the tasks stream,
filtered to ``<prefix>.<tenant>.tasks.<queue>`` and shared by every process serving that
queue, so each task goes to one of them. The executor creates it (with the first task
step of that queue: until then a fetch finds nothing); a worker only fetches and acks,
which is all its NATS user may do (``flowmesh nats-user <tenant> --role worker --queue
<queue>``). Explicit acks, unlimited redeliveries: a task whose worker dies goes to
another one after the consumer's ``ack_wait`` (the executor's ``task_ack_wait``, 30 s by
default); a running task is kept alive by in-progress acks, every ``heartbeat_interval``.

A worker's connection uses the inbox prefix ``_INBOX_t_<tenant>``
(:func:`flowmesh_proto.tasks.worker_inbox_prefix`): its NATS user may subscribe nowhere
else. :meth:`Worker.connect` sets it; a connection of your own must too.

Stopping stops fetching, waits for running tasks up to ``stop_grace``, cancels the rest
(nak'd, so another worker takes them at once), and unsubscribes the pull subscriptions
before the connection is drained (a drain hangs on a pull subscription otherwise).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import nats
import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from flowmesh_proto.ids import tenant_id_problem
from flowmesh_proto.subjects import Subjects
from flowmesh_proto.tasks import task_consumer, worker_inbox_prefix
from flowmesh_worker.context import Handler
from flowmesh_worker.delivery import CANCEL_GRACE, serve

log = structlog.get_logger("flowmesh.worker")

_H = TypeVar("_H", bound=Handler)


@dataclass(slots=True)
class _Queue:
    name: str
    subject: str
    handler: Handler
    limit: int
    sub: JetStreamContext.PullSubscription | None = None
    intake: asyncio.Task[None] | None = None
    active: set[asyncio.Task[None]] = field(default_factory=set)


class Worker:
    """Serves task queues of ``tenant``: register functions with :meth:`task`, then
    :meth:`run` until an event is set (or use ``async with worker:``).

    ``concurrency`` is the default number of tasks one queue runs at once in this process;
    ``heartbeat_interval`` (seconds) must stay well under the consumers' ``ack_wait``
    (the executor's ``task_ack_wait``, 30 s by default); ``poll_interval`` bounds how long
    a stop waits for an idle fetch.
    """

    def __init__(
        self,
        nc: Client,
        *,
        tenant: str,
        prefix: str = "fm",
        stream: str = "FM_TASKS",
        concurrency: int = 16,
        heartbeat_interval: float = 10.0,
        poll_interval: float = 1.0,
        stop_grace: float = 30.0,
    ) -> None:
        problem = tenant_id_problem(tenant)
        if problem is not None:
            raise ValueError(problem)
        if concurrency < 1 or heartbeat_interval <= 0 or poll_interval <= 0 or stop_grace < 0:
            raise ValueError("concurrency, heartbeat_interval and poll_interval must be positive")
        self.tenant = tenant
        self._nc = nc
        self._subjects = Subjects(prefix)
        self._stream = stream
        self._concurrency = concurrency
        self._heartbeat_interval = heartbeat_interval
        self._poll = poll_interval
        self._stop_grace = stop_grace
        self._queues: dict[str, _Queue] = {}
        self._stopping = asyncio.Event()
        self._started = False
        self._owns_connection = False

    @classmethod
    async def connect(
        cls, url: str, *, tenant: str, name: str = "flowmesh-worker", **options: Any
    ) -> Worker:
        """A worker on its own connection to ``url``, drained when the worker stops.

        ``url`` holds the tenant's worker user (``nats://<user>:<password>@host:4222``);
        the connection uses the tenant's worker inbox prefix.
        """
        problem = tenant_id_problem(tenant)
        if problem is not None:
            raise ValueError(problem)
        nc = await nats.connect(
            url, name=name, max_reconnect_attempts=-1, inbox_prefix=worker_inbox_prefix(tenant)
        )
        try:
            worker = cls(nc, tenant=tenant, **options)
        except BaseException:
            await nc.close()
            raise
        worker._owns_connection = True
        return worker

    def task(self, queue: str, *, concurrency: int | None = None) -> Callable[[_H], _H]:
        """Decorator: serve ``queue`` with the decorated ``async def f(input, task)``."""
        subject = self._subjects.tasks(self.tenant, queue)  # SubjectError for a bad name
        if self._started:
            raise RuntimeError("register tasks before the worker starts")
        if queue in self._queues:
            raise ValueError(f"queue {queue!r} already has a task function")
        limit = concurrency or self._concurrency

        def register(handler: _H) -> _H:
            self._queues[queue] = _Queue(queue, subject, handler, limit)
            return handler

        return register

    async def start(self) -> None:
        """Start fetching from each queue's consumer."""
        if self._started:
            raise RuntimeError("the worker has already started")
        if not self._queues:
            raise RuntimeError("the worker serves no queue: register a task first")
        self._started = True
        js = self._nc.jetstream()
        try:
            for queue in self._queues.values():
                consumer = task_consumer(self.tenant, queue.name)
                queue.sub = await js.pull_subscribe_bind(consumer, stream=self._stream)
                queue.intake = asyncio.create_task(self._intake(queue), name=f"intake-{queue.name}")
        except BaseException:
            await self.stop()
            raise
        log.info("worker.started", tenant=self.tenant, queues=sorted(self._queues))

    async def stop(self) -> None:
        """Stop fetching, let running tasks finish (up to ``stop_grace``), release the rest."""
        if not self._started or self._stopping.is_set():
            return
        self._stopping.set()
        queues = list(self._queues.values())
        intakes = {q.intake for q in queues if q.intake is not None}
        if intakes:
            _, stuck = await asyncio.wait(intakes, timeout=self._poll + CANCEL_GRACE)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck, timeout=CANCEL_GRACE)
        running = {task for q in queues for task in q.active}
        finished: set[asyncio.Task[None]] = running
        released: set[asyncio.Task[None]] = set()
        if running:
            finished, released = await asyncio.wait(running, timeout=self._stop_grace)
            for task in released:
                task.cancel()
            if released:
                await asyncio.wait(released, timeout=CANCEL_GRACE + 1.0)
        for queue in queues:
            await self._unsubscribe(queue)
        log.info(
            "worker.stopped", tenant=self.tenant, finished=len(finished), released=len(released)
        )
        if self._owns_connection:
            await self._nc.drain()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then stop gracefully."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _intake(self, queue: _Queue) -> None:
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                free = queue.limit - len(queue.active)
                if free <= 0:
                    await asyncio.wait(
                        {stopping, *queue.active}, return_when=asyncio.FIRST_COMPLETED
                    )
                    continue
                for msg in await self._fetch(queue, free, stopping):
                    self._spawn(queue, msg)
        finally:
            stopping.cancel()

    async def _fetch(self, queue: _Queue, batch: int, stopping: asyncio.Task[Any]) -> list[Msg]:
        assert queue.sub is not None
        try:
            return await queue.sub.fetch(batch, timeout=self._poll)
        except TimeoutError:  # nats' own, or a bare one from inside a batch fetch
            return []
        except nats.errors.Error as exc:
            log.warning("worker.fetch_failed", queue=queue.name, error=str(exc) or repr(exc))
            await asyncio.wait({stopping}, timeout=self._poll)  # back off, unless stopping
            return []

    def _spawn(self, queue: _Queue, msg: Msg) -> None:
        task = asyncio.create_task(serve(self._nc, msg, queue.handler, self._heartbeat_interval))
        queue.active.add(task)
        task.add_done_callback(queue.active.discard)
        task.add_done_callback(_report_crash)

    async def _unsubscribe(self, queue: _Queue) -> None:
        if queue.sub is None:
            return
        try:
            await queue.sub.unsubscribe()
        except nats.errors.Error as exc:
            log.warning("worker.unsubscribe_failed", queue=queue.name, error=str(exc))
        queue.sub = None


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("task.crashed", exc_info=task.exception())
