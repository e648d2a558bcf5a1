"""Event triggers' filters: a CEL expression over ``event`` (the envelope with CloudEvents
field names: ``id``, ``type``, ``source``, ``time``, ``data``), compiled once. Pure."""

from __future__ import annotations

from typing import Any

import msgspec

from flowmesh_proto.events import EventEnvelope
from flowmesh_shared.expressions import ExpressionError, compile_expression, evaluate


class EventFilter:
    __slots__ = ("expression",)

    def __init__(self, source: str) -> None:
        try:
            self.expression = compile_expression(source)
        except ExpressionError as exc:
            raise ValueError(str(exc)) from exc
        unknown = set(self.expression.references.variables) - {"event"}
        if unknown:
            raise ValueError(f"a filter reads only `event`, not {', '.join(sorted(unknown))}")

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether the filter holds for ``event``: exactly ``true`` (an error is no match)."""
        try:
            return evaluate(self.expression, {"event": event}) is True
        except ExpressionError:
            return False


def event_view(envelope: EventEnvelope) -> dict[str, Any]:
    """The envelope as filters and ``trigger.event`` see it (no tenant: it is implied)."""
    view: dict[str, Any] = msgspec.to_builtins(envelope)
    view.pop("tenant", None)
    view.setdefault("source", "")
    view.setdefault("time", None)
    view.setdefault("data", None)
    return view
