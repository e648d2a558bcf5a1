"""Turns at the event loop for expression work (DESIGN section 12).

One evaluation is bounded by its budget, but a service runs many at once (every ready run's
decision, every event's filters): each is a task, and asyncio runs every task that is ready
before it polls its sockets again, so fifty runs each spending their budget would keep
``/healthz``, NATS heartbeats and leases waiting for all fifty. :class:`Turns` counts the
units evaluations spend in one pass of the loop; once a pass has spent ``per_pass``, the
next evaluation waits for a later pass, after the loop has polled its sockets.
"""

from __future__ import annotations

import asyncio

__all__ = ["Turns"]


class Turns:
    """One per process: ``await take()`` before evaluating, ``spend(units)`` after."""

    __slots__ = ("_reset_due", "per_pass", "spent")

    def __init__(self, per_pass: float) -> None:
        self.per_pass = per_pass
        self.spent = 0.0
        self._reset_due = False

    @property
    def due(self) -> bool:
        """Whether :meth:`take` would wait (a loop of many evaluations can skip the call)."""
        return self.spent >= self.per_pass

    async def take(self) -> None:
        """Return at once while this pass has units left, else in a later pass."""
        while self.spent >= self.per_pass:
            if not self._reset_due:
                # runs in the next pass, after the sockets are polled, before whoever
                # waits behind it (callbacks run in the order they were scheduled)
                asyncio.get_running_loop().call_soon(self._reset)
                self._reset_due = True
            await asyncio.sleep(0)

    def spend(self, units: float) -> None:
        self.spent += units

    def _reset(self) -> None:
        self.spent = 0.0
        self._reset_due = False
