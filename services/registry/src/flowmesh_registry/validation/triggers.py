"""Triggers: ids, cron expressions, time zones and event types."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.ids import TRIGGER_ID_PATTERN, is_event_type, is_trigger_id
from flowmesh_proto.workflow import CronTrigger, EventTrigger, Trigger
from flowmesh_registry.validation.problems import Problems, shown

FAILED = ErrorCode.VALIDATION_FAILED
#: Names ZoneInfo loads that are not IANA zones but whatever the host has configured.
_HOST_ZONES = frozenset({"localtime", "posixrules"})
#: The start of the "does it ever fire" probe: any fixed instant works (no clock reads here).
_SOME_TIME = datetime(2001, 1, 1, tzinfo=UTC)


def check_triggers(triggers: list[tuple[int, Trigger]], problems: Problems) -> None:
    seen: set[str] = set()
    for index, trigger in triggers:
        path = f"triggers[{index}]"
        if not is_trigger_id(trigger.id):
            problems.add(f"{path}.id", FAILED, f"a trigger id must match {TRIGGER_ID_PATTERN}")
        elif trigger.id in seen:
            problems.add(f"{path}.id", FAILED, f"duplicate trigger id {trigger.id!r}")
        seen.add(trigger.id)
        if isinstance(trigger, CronTrigger):
            problem = cron_problem(trigger.cron)
            if problem is not None:
                problems.add(f"{path}.cron", FAILED, problem)
            problem = timezone_problem(trigger.timezone)
            if problem is not None:
                problems.add(f"{path}.timezone", FAILED, problem)
        elif isinstance(trigger, EventTrigger) and not is_event_type(trigger.event):
            message = f"{shown(trigger.event)} is not an event type (like order.created)"
            problems.add(f"{path}.event", FAILED, message)


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone, or None when it is."""
    if name in _HOST_ZONES:
        return f"{name!r} is not an IANA time zone name"
    try:
        ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError for odd paths, OSError, ...
        return f"unknown IANA time zone {shown(name)}"
    return None


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron expression we run, or None when it is.

    Five fields (minute hour day-of-month month day-of-week), or six with seconds first,
    as croniter reads them; an expression that can never fire (``0 0 30 2 *``) is refused.
    """
    fields = len(expression.split())
    if fields not in (5, 6):
        return f"a cron expression has 5 fields, or 6 with seconds first; this one has {fields}"
    seconds_first = fields == 6
    try:
        if not croniter.is_valid(expression, second_at_beginning=seconds_first):
            return f"{shown(expression)} is not a valid cron expression"
        croniter(expression, _SOME_TIME, second_at_beginning=seconds_first).get_next(datetime)
    except CroniterBadDateError:
        return f"{shown(expression)} never fires"
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        return f"{shown(expression)} is not a valid cron expression: {exc}"
    return None
