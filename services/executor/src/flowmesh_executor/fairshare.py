"""PURE: whose run requests an executor takes next: weighted turns among tenants.

Stride scheduling: each tenant with requests waiting has a *pass*; a free slot goes to the
tenant with the lowest pass, whose pass then grows by ``1 / weight``. Over any stretch in
which tenants stay busy, each gets slots in proportion to its weight, and a tenant that
was idle joins at the current virtual time (the pass of the last slot given), so idling
earns no credit and a flood earns no priority: a tenant with one request waiting gets the
next free slot unless another tenant's pass is lower, which after one slot it is not.

Ties go to the tenant that became ready first. The scheduler keeps no clock: it only
orders turns; the shell (:mod:`flowmesh_executor.intake`) decides when to ask.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable

#: The weight of a tenant that has none set.
DEFAULT_WEIGHT = 1
#: Passes remembered for tenants that are not waiting (beyond this, they are forgotten).
REMEMBERED = 10_000


class FairShare:
    """Weighted turns among the tenants that have run requests waiting."""

    def __init__(self) -> None:
        self._weights: dict[str, int] = {}
        self._passes: dict[str, float] = {}
        self._ready: dict[str, int] = {}  # tenant -> the order it became ready in
        self._order = itertools.count()
        self._clock = 0.0

    @property
    def waiting(self) -> frozenset[str]:
        return frozenset(self._ready)

    def weigh(self, tenant: str, weight: int) -> None:
        """Set ``tenant``'s weight (at least 1)."""
        self._weights[tenant] = max(1, weight)

    def weight(self, tenant: str) -> int:
        return self._weights.get(tenant, DEFAULT_WEIGHT)

    def ready(self, tenant: str) -> None:
        """``tenant`` has requests waiting (again): it joins the turns at the virtual time
        (the pass of the last slot given), never below its own pass."""
        if tenant in self._ready:
            return
        self._ready[tenant] = next(self._order)
        self._passes[tenant] = max(self._passes.get(tenant, 0.0), self._clock)

    def idle(self, tenant: str) -> None:
        """``tenant`` has nothing waiting (its queue is empty, or at its ``max_running``)."""
        if self._ready.pop(tenant, None) is None:
            return
        if len(self._passes) > REMEMBERED:  # forget those not waiting: they rejoin at
            # the virtual time, at most one fetch's worth of slots earlier than they would
            self._passes = {name: self._passes[name] for name in self._ready}

    def share(
        self, room: int, *, busy: Iterable[str] = (), most: int | None = None
    ) -> dict[str, int]:
        """Give ``room`` free slots to the waiting tenants, one slot at a time by turn
        (those in ``busy`` are skipped; each gets at most ``most``). The passes move as if
        every slot given is used: :meth:`refund` the ones a tenant could not fill."""
        skip = set(busy)
        heap = [
            (self._passes[tenant], order, tenant)
            for tenant, order in self._ready.items()
            if tenant not in skip
        ]
        heapq.heapify(heap)
        given: dict[str, int] = {}
        while room > 0 and heap:
            value, order, tenant = heapq.heappop(heap)
            self._clock = max(self._clock, value)
            given[tenant] = given.get(tenant, 0) + 1
            room -= 1
            value += 1.0 / self.weight(tenant)
            self._passes[tenant] = value
            if most is None or given[tenant] < most:
                heapq.heappush(heap, (value, order, tenant))
        return given

    def refund(self, tenant: str, unused: int) -> None:
        """``tenant`` filled ``unused`` fewer slots than it was given: its pass goes back."""
        if unused > 0 and tenant in self._passes:
            back = self._passes[tenant] - unused / self.weight(tenant)
            self._passes[tenant] = back
            self._clock = min(self._clock, back)
