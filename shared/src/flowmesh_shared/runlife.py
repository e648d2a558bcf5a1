"""A run's life, written once: start, schedule, ask for, wake, park, cancel, read, await.

Every service that starts or steers a run does it through a :class:`RunLifecycle`
(STYLE habit 11): :class:`~flowmesh_shared.runlife_nats.NatsRunLifecycle` in the services,
:class:`~flowmesh_shared.runlife_memory.MemoryRunLifecycle` in unit tests; both pass the
same contract (``tests/integration/test_runlife.py``). This module is the contract: the
rules below, the Protocol, what it answers and how it fails.

- **Start** (DESIGN sections 3 and 5): the run's opening event (``run.queued``, or
  ``run.scheduled`` for a delayed run) on the run's subject, fenced on an empty subject
  (``Nats-Expected-Last-Subject-Sequence: 0``, ``Nats-Msg-Id``
  :func:`~flowmesh_proto.msgids.opening_msg_id`), then the :class:`RunRequest` on the
  tenant's request subject (``Nats-Msg-Id`` :func:`~flowmesh_proto.msgids.request_msg_id`,
  the trace headers) or, for a delayed run, the :class:`Timer` that sends it when due.
- **A taken subject** (someone else opened the run: another replica firing the same tick,
  a retried request, a resumed attempt): the opener's request is sent again, built from
  the run's stored opening, while the run is still only opened (its last event is that
  opening): a starter that died between its two publishes leaves no run without a
  request, and a request that had landed is dropped as a duplicate. A run that moved on
  is left alone. :meth:`RunLifecycle.start` says which happened (:class:`Opening`).
- **Wake**: the run's request, rebuilt from its opening, with a ``Nats-Msg-Id`` the caller
  names (:func:`~flowmesh_proto.msgids.wake_msg_id`, ``rerequest_msg_id``).
- **Park** (DESIGN section 5, long waits): a run whose executor gives its lease back
  while it waits (a long ``delay``, an event, a concurrency slot) is asked for again by a
  durable :class:`~flowmesh_proto.timers.Timer` on ``<prefix>.<t>.timers.resume``
  (:func:`~flowmesh_proto.timers.park_timer`: ``Nats-Msg-Id``
  :func:`~flowmesh_proto.msgids.timer_msg_id` of ``<run_id>:<last sequence>``, so one park
  sets one timer; its request goes out as ``resume:<run_id>:<last sequence>``, so one park
  is resumed once). The scheduler sends the request when due.
- **Cancel**: the :class:`CancelRequest` is put in the run-control bucket (read by the
  executor that next picks the run up), then published on the run's control subject. A
  run only scheduled is ended at once instead (:meth:`RunLifecycle.cancel_scheduled`:
  ``run.cancelled`` fenced on its ``run.scheduled``).
- **Read**: the last event (a direct get, or through the stream leader for replicated
  streams), a replay up to a sequence, the whole history.
- **Await**: a terminal event seen live only wakes the wait; the stream decides (a
  subscriber may see a message before the stream stores it, and a fenced-out publish of a
  stale executor reaches subscribers though the stream refused it).

Failures are this module's errors (:class:`RunStoreUnavailable`, :class:`RunTooLarge`);
each caller translates them (a 503, a step error, a retry).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Protocol

import msgspec

from flowmesh_proto.runs import (
    CancelRequest,
    RunEvent,
    RunRequest,
    RunStatus,
    final_status,
)


class RunLifeError(Exception):
    """The run's messages could not be written or read."""

    def __init__(self, detail: str = "") -> None:
        self.detail = detail or (type(self).__doc__ or "").strip().split("\n", 1)[0]
        super().__init__(self.detail)


class RunStoreUnavailable(RunLifeError):
    """NATS JetStream cannot serve the run's messages now."""


class RunTooLarge(RunLifeError):
    """The run's messages are larger than NATS takes."""

    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(
            f"the run's messages would be {size} bytes; NATS takes at most {limit}: "
            "make the input smaller"
        )


class Opening(enum.Enum):
    """What :meth:`RunLifecycle.start` did."""

    #: This call opened the run and sent its request (or timer).
    OPENED = "opened"
    #: The run was opened before and was still only opened: its request was sent again.
    RESENT = "resent"
    #: The run was opened before and has moved on: nothing sent.
    TAKEN = "taken"


class LastEvent(msgspec.Struct, frozen=True):
    """A run's latest event and its stream sequence."""

    event: RunEvent
    seq: int

    @property
    def final_status(self) -> RunStatus | None:
        """The run's status if this event ended it, else None."""
        return final_status(self.event)


#: Trace headers to carry on a request (None: the current trace context's).
Trace = Mapping[str, str] | None


class RunLifecycle(Protocol):
    """Starting, steering and reading runs (see the module's docstring for the rules)."""

    async def start(self, request: RunRequest, at: datetime, *, trace: Trace = None) -> Opening:
        """Open the run ``request`` names with ``run.queued`` written at ``at``, then send
        ``request``."""
        ...

    async def schedule(self, request: RunRequest, at: datetime, *, trace: Trace = None) -> Opening:
        """Open the delayed run ``request`` names (its ``run_at`` set) with
        ``run.scheduled``, then the timer that sends ``request`` when due."""
        ...

    async def request(self, request: RunRequest, msg_id: str, *, trace: Trace = None) -> None:
        """Send ``request`` (dropped as a duplicate if ``msg_id`` was sent already)."""
        ...

    async def wake(self, tenant: str, run_id: str, msg_id: str, *, trace: Trace = None) -> bool:
        """Send the run's request again, rebuilt from its opening; False when it has none."""
        ...

    async def park(
        self, request: RunRequest, last_seq: int, due: datetime, *, trace: Trace = None
    ) -> None:
        """Leave the run, parked after its event at ``last_seq``, to a durable timer that
        sends ``request`` again at ``due``; parked twice at one sequence, one timer."""
        ...

    async def cancel(self, request: CancelRequest) -> None:
        """Record the cancel for whoever picks the run up next, then tell whoever holds it."""
        ...

    async def cancel_scheduled(self, last: LastEvent, request: CancelRequest) -> bool:
        """End a run that is only scheduled (``last``, its ``run.scheduled``): its
        ``run.cancelled``, fenced on ``last``; False when the run moved on meanwhile (cancel
        it the usual way)."""
        ...

    async def last(self, tenant: str, run_id: str) -> LastEvent | None:
        """The run's latest event, None for a run that has none."""
        ...

    async def replay(self, tenant: str, run_id: str, upto: int) -> list[RunEvent]:
        """The run's events in order, up to the stream sequence ``upto``."""
        ...

    async def history(self, tenant: str, run_id: str) -> tuple[list[RunEvent], int]:
        """The run's events in order and its last sequence; ``([], 0)`` for an unknown run.
        A run whose only event is its opening (a fresh request) costs one round trip."""
        ...

    async def await_end(
        self,
        tenant: str,
        run_id: str,
        seconds: float | None,
        *,
        before: Callable[[], Awaitable[object]] | None = None,
    ) -> LastEvent | None:
        """Watch the run, call ``before`` (a start that must not race the watch), then
        wait up to ``seconds`` (None: without end) for its terminal event; None
        when it has not ended by then."""
        ...
