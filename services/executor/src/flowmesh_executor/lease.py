"""The lease on a run request, as this executor can know it (DESIGN section 5).

JetStream redelivers an unacked request ``lease_seconds`` (the consumer's ack wait) after
the last heartbeat (``in_progress``) it received; from then on another executor may own
the run. An executor cannot see that moment, but it can bound it from below: its lease
holds at least until ``lease_seconds`` after it *sent* a heartbeat the server confirmed.
So :class:`RunLease` keeps when the last confirmed heartbeat was sent, on a monotonic
clock (``time.monotonic``: on Linux it counts while the process is stopped, SIGSTOP
included), and calls the lease held while less than ``term`` (the lease minus a margin
for a publish in flight) has passed since.

A lease that lapsed stays lost: a heartbeat that reaches the server after the request was
redelivered refreshes the new holder's delivery, not ours, so it must not revive it. The
holder then stops working on the run and publishes nothing more; the new holder's claim
(``run.claimed``) fences it anyway, this only spares the wasted work and the race.

Pure: time is an argument.
"""

from __future__ import annotations

import math

__all__ = ["LEASE_MARGIN", "LeaseLost", "RunLease", "lease_term"]

#: Of the lease, the part kept as a margin: a publish checked just before the term ends
#: still lands before the server could hand the run to another executor.
LEASE_MARGIN = 1 / 6


class LeaseLost(Exception):
    """This executor's lease on the run may have lapsed: stop, publish nothing more."""


def lease_term(lease_seconds: float) -> float:
    """Seconds after a confirmed heartbeat's sending during which the lease is ours."""
    return lease_seconds * (1 - LEASE_MARGIN)


class RunLease:
    """One run request's lease: granted at delivery, renewed by confirmed heartbeats."""

    __slots__ = ("_lost", "renewed_at", "term")

    def __init__(self, term: float, granted_at: float) -> None:
        #: Seconds after ``renewed_at`` during which the lease is ours.
        self.term = term
        #: When the last confirmed heartbeat was sent (or the request received).
        self.renewed_at = granted_at
        self._lost = False

    @classmethod
    def unbounded(cls) -> RunLease:
        """A lease that never lapses (a run driven outside a consumer: tests, tools)."""
        return cls(math.inf, 0.0)

    def held(self, now: float) -> bool:
        """Whether the lease is still ours at ``now``; once False, False for good."""
        if not self._lost and now - self.renewed_at > self.term:
            self._lost = True
        return not self._lost

    def renewed(self, sent_at: float) -> bool:
        """A heartbeat sent at ``sent_at`` was confirmed: the lease runs from then on, unless
        it had lapsed before (a late heartbeat revives nothing). Whether it is held."""
        if self.held(sent_at):
            self.renewed_at = max(self.renewed_at, sent_at)
        return not self._lost

    def check(self, now: float) -> None:
        """Raise :class:`LeaseLost` unless the lease is held at ``now``."""
        if not self.held(now):
            seconds = now - self.renewed_at
            raise LeaseLost(f"no heartbeat confirmed for {seconds:.1f} s (term {self.term:g} s)")
