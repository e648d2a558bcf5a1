"""What a task function is told about the step it serves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Handler = Callable[[Any, "TaskContext"], Coroutine[Any, Any, Any]]
"""A task function: ``async def f(input, task: TaskContext) -> output`` (JSON-compatible).

Raising fails the step with the exception's class name and message.
"""


@dataclass(frozen=True, slots=True)
class TaskContext:
    """One delivery of one step attempt.

    ``idempotency_key`` (``<run_id>:<node_id>``) is the same for every delivery and every
    attempt of one step: use it to make side effects idempotent, since a step may be
    delivered again (its executor or a worker died). ``deadline`` is when the executor
    stops waiting for this attempt (None: no bound); ``delivery`` counts deliveries of
    this request (1 the first time).
    """

    tenant: str
    queue: str
    run_id: str
    workflow_id: str
    version: int
    node_id: str
    attempt: int
    idempotency_key: str
    deadline: datetime | None
    delivery: int
    _beat: Callable[[], Awaitable[None]] = field(repr=False, compare=False)

    async def heartbeat(self) -> None:
        """Tell JetStream and the executor the task is alive now.

        The worker already does this every ``heartbeat_interval`` while the function
        runs; call it only to report progress sooner.
        """
        await self._beat()
