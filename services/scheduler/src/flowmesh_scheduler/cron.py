"""When cron triggers fire: pure functions of (expression, time zone, instants). No clock.

Expressions have five fields, or six with seconds first (croniter reads them). They are
matched against the wall clock of the trigger's IANA time zone; what a wall time means on
the days the clock jumps is decided here, once:

- **Spring forward** (a wall time that does not exist, 02:30 when clocks go from 02:00 to
  03:00): an expression with a fixed hour fires once, as far after the jump as the wall
  time was into the gap (02:30 fires at 03:30, the same instant as 02:30 before the jump
  would have been); an expression firing every hour (hour field ``*`` or ``*/n``) just has
  no fires in the hour that does not exist, and keeps its interval in real time.
- **Fall back** (a wall time that happens twice, 02:30 when clocks go from 03:00 to
  02:00): an expression with a fixed hour fires once, at the first 02:30; one firing every
  hour fires in both, so ``*/15 * * * *`` fires every 15 minutes of real time all night.

Every instant returned is timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

#: How far a wall time may be from its instant's order on a day the clock moves: the
#: largest DST shift in use is 2 hours (Troll station); take a margin over it.
_DAY = timedelta(days=1)


class CronSpec:
    """A cron trigger's schedule: expression and time zone, parsed once."""

    __slots__ = ("every_hour", "expression", "seconds", "zone")

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise ValueError(f"a cron expression has 5 or 6 fields, not {len(fields)}")
        self.expression = expression
        self.seconds = len(fields) == 6
        self.zone = _zone(timezone)
        hour = fields[2] if self.seconds else fields[1]
        self.every_hour = hour == "*" or hour.startswith("*/")
        if not croniter.is_valid(expression, second_at_beginning=self.seconds):
            raise ValueError(f"{expression!r} is not a valid cron expression")

    def _walls(self, start: datetime) -> Iterator[datetime]:
        """Wall times (naive) matching the expression, after ``start`` (naive)."""
        it = croniter(self.expression, start, second_at_beginning=self.seconds)
        while True:
            yield it.get_next(datetime)

    def _walls_back(self, start: datetime) -> Iterator[datetime]:
        it = croniter(self.expression, start, second_at_beginning=self.seconds)
        while True:
            yield it.get_prev(datetime)

    def instants(self, wall: datetime) -> list[datetime]:
        """The instants (UTC) at which the wall time ``wall`` (naive) fires."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        second = wall.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [first.astimezone(UTC)]
        exists = first.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) == wall
        if not exists:  # in the gap: fold=0 reads it with the offset before the jump
            return [] if self.every_hour else [first.astimezone(UTC)]
        if self.every_hour:  # happens twice: both, in order
            return sorted({first.astimezone(UTC), second.astimezone(UTC)})
        return [min(first.astimezone(UTC), second.astimezone(UTC))]

    def _margin(self, moment: datetime) -> timedelta:
        """How far wall order may differ from instant order around ``moment``: the size of
        the offset changes within a day of it (zero away from DST changes)."""
        offsets = [
            (moment + shift).astimezone(self.zone).utcoffset() or timedelta(0)
            for shift in (-_DAY, timedelta(0), _DAY)
        ]
        return max(offsets) - min(offsets)

    def next_fire(self, after: datetime) -> datetime:
        """The first instant strictly after ``after`` (aware) at which the schedule fires."""
        after = after.astimezone(UTC)
        margin = self._margin(after)
        start = after.astimezone(self.zone).replace(tzinfo=None, fold=0) - margin
        best: datetime | None = None
        horizon: datetime | None = None
        for wall in self._walls(start - timedelta(seconds=1)):
            if horizon is not None and wall > horizon:
                break
            for instant in self.instants(wall):
                if instant > after and (best is None or instant < best):
                    best = instant
                    horizon = wall + self._margin(best)
        assert best is not None
        return best

    def previous_fire(self, before: datetime) -> datetime:
        """The last instant strictly before ``before`` (aware) at which it fires."""
        before = before.astimezone(UTC)
        margin = self._margin(before)
        start = before.astimezone(self.zone).replace(tzinfo=None, fold=1) + margin
        best: datetime | None = None
        horizon: datetime | None = None
        for wall in self._walls_back(start + timedelta(seconds=1)):
            if horizon is not None and wall < horizon:
                break
            for instant in self.instants(wall):
                if instant < before and (best is None or instant > best):
                    best = instant
                    horizon = wall - self._margin(best)
        assert best is not None
        return best

    def fires(self, after: datetime, until: datetime, limit: int) -> list[datetime]:
        """Fires in ``(after, until]``, the first ``limit`` of them."""
        found: list[datetime] = []
        moment = after
        while len(found) < limit:
            moment = self.next_fire(moment)
            if moment > until:
                break
            found.append(moment)
        return found


def missed(
    spec: CronSpec, policy: str, last_fire: datetime | None, now: datetime, cap: int
) -> list[datetime]:
    """The fires a trigger missed since ``last_fire`` (none had run since), to fire now.

    ``skip``: none. ``once``: the latest missed fire. ``all``: every missed fire, the most
    recent ``cap`` of them when there were more. A trigger never fired before (new, or its
    state lost) missed nothing: it starts with its next fire.
    """
    if last_fire is None or policy == "skip" or cap <= 0:
        return []
    latest = spec.previous_fire(now + timedelta(microseconds=1))
    if latest <= last_fire:
        return []
    if policy == "once":
        return [latest]
    recent = [latest]
    while len(recent) < cap:
        earlier = spec.previous_fire(recent[-1])
        if earlier <= last_fire:
            break
        recent.append(earlier)
    return recent[::-1]


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
