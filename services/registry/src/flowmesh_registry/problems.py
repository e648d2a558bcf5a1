"""Problems with one field of a request: 422 VALIDATION_FAILED naming its path."""

from __future__ import annotations

from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_shared.errors import FlowmeshError

#: Version numbers are PostgreSQL integers; anything outside this never names a version.
MAX_VERSION = 1_000_000_000


def field_problem(path: str, message: str) -> FlowmeshError:
    return FlowmeshError(
        ErrorCode.VALIDATION_FAILED,
        message,
        errors=[ProblemItem(path=path, code=ErrorCode.VALIDATION_FAILED.name, message=message)],
    )


def checked_version(value: int | None, path: str) -> int | None:
    """``value`` when it can name a version (1..MAX_VERSION) or is absent; else 422."""
    if value is not None and not 1 <= value <= MAX_VERSION:
        raise field_problem(path, f"{path} must be between 1 and {MAX_VERSION}")
    return value
