"""Reading rendered parameters: durations, times and text, with clear step errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from flowmesh_executor.nodes.base import StepError

INVALID = "InvalidParameters"


def duration(value: Any, what: str) -> timedelta:
    """An ISO 8601 duration (``PT1.5S``) or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    try:
        parsed = msgspec.convert(value, timedelta)
    except msgspec.ValidationError:
        raise StepError(INVALID, f"{what} {_shown(value)} is not an ISO 8601 duration") from None
    if parsed < timedelta(0):
        raise StepError(INVALID, f"{what} {_shown(value)} is negative")
    return parsed


def moment(value: Any, what: str) -> datetime:
    """An RFC 3339 time with an offset."""
    try:
        parsed = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        raise StepError(INVALID, f"{what} {_shown(value)} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise StepError(INVALID, f"{what} {_shown(value)} has no time zone offset")
    return parsed.astimezone(UTC)


def text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise StepError(INVALID, f"{what} must be a non-empty string, not {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."
