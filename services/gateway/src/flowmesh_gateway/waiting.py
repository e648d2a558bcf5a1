"""Why a queued run waits (DESIGN section 13), as the gateway tells it.

A run's own events say so once an executor has taken it and it must wait for a slot of its
workflow's concurrency key (``run.waiting``, folded into the run's ``waiting``). Before an
executor takes it nothing is published about it, so the gateway reads the tenant's intake
(its run-request consumer, :meth:`flowmesh_gateway.runs.Runs.tenant_runs`): the tenant
holds its ``max_running`` runs (``tenant_max_running``), or the executors have not come to
it yet (``capacity``). ``since`` is when the run was queued.

- :func:`waiting_reason` decides (pure);
- :class:`WaitingNotices` are the computed ``run.waiting`` events of a queued run's SSE
  stream: one when the stream opens (after the run's ``run.queued``), one whenever the
  reason changes, looked at every ``sse_waiting_seconds`` until a stored event after the
  ``run.queued`` arrives (then the run's own events say the rest). They carry no ``id:``:
  they are not stored, and a client resumes after stored events only.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import structlog

from flowmesh_gateway.sse import notice
from flowmesh_proto.runs import RunQueued, RunWaiting, Waiting
from flowmesh_shared.errors import FlowmeshError

log = structlog.get_logger("flowmesh.gateway.waiting")

_encoder = msgspec.json.Encoder()


def waiting_reason(running: int, max_running: int | None, since: datetime) -> Waiting:
    """Why a queued run that no executor has taken waits: its tenant holds ``running`` runs
    and may hold ``max_running`` (None: no limit of its own)."""
    if max_running is not None and running >= max_running:
        return Waiting(reason="tenant_max_running", since=since)
    return Waiting(reason="capacity", since=since)


class WaitingNotices:
    """The computed ``run.waiting`` events of one stream of a queued run.

    ``queued`` is the run's ``run.queued``, its latest event (at stream sequence ``seq``)
    when the stream was asked for; ``probe`` says why the run waits now (it may raise
    :class:`FlowmeshError`: nothing is said then, and it is asked again later)."""

    def __init__(
        self,
        queued: RunQueued,
        seq: int,
        probe: Callable[[], Awaitable[Waiting]],
        *,
        every: float,
    ) -> None:
        self._queued, self._seq, self._probe, self._every = queued, seq, probe, every
        self._said: Waiting | None = None
        self._next = 0.0
        #: When (monotonic) :meth:`next` has something to say at the latest; infinity until
        #: the stream's next event when it waits for one.
        self.due = 0.0

    async def next(self, seen: int, now: float) -> bytes:
        """The SSE event to send now (``b""``: none), the stream having sent its stored
        events up to the sequence ``seen``, at ``now`` (monotonic)."""
        if seen != self._seq:  # the run.queued not sent yet, or the run has moved on
            self.due = math.inf
            return b""
        if now < self._next:
            self.due = self._next
            return b""
        self._next = self.due = now + self._every
        try:
            waiting = await self._probe()
        except FlowmeshError as exc:
            log.warning("sse.waiting_unknown", error=exc.detail)
            return b""
        if waiting == self._said:
            return b""
        self._said = waiting
        queued = self._queued
        event = RunWaiting(
            tenant=queued.tenant,
            run_id=queued.run_id,
            workflow_id=queued.workflow_id,
            version=queued.version,
            at=datetime.now(UTC),
            reason=waiting.reason,
            since=waiting.since,
        )
        return notice("run.waiting", _encoder.encode(event))
