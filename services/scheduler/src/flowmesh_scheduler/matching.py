"""Event triggers' filters: a CEL expression over ``event`` (the envelope with CloudEvents
field names: ``id``, ``type``, ``source``, ``time``, ``data``), compiled once. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from flowmesh_proto.events import EventEnvelope
from flowmesh_shared.expressions import (
    Expression,
    ExpressionBudgetExceeded,
    ExpressionError,
    Meter,
    compile_expression,
    evaluate,
)

#: What a filter or a match says of an event: it holds, it does not (false, or an error),
#: or it would cost more than its budget (no match either, but counted).
Verdict = Literal["yes", "no", "over_budget"]


def holds(expression: Expression | str, variables: Mapping[str, Any], meter: Meter) -> Verdict:
    """Whether ``expression`` is exactly ``true`` over ``variables``."""
    try:
        return "yes" if evaluate(expression, variables, meter) is True else "no"
    except ExpressionBudgetExceeded:
        return "over_budget"
    except ExpressionError:
        return "no"


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

    def matches(self, event: dict[str, Any], meter: Meter) -> Verdict:
        """Whether the filter holds for ``event``: exactly ``true`` (an error is no match)."""
        return holds(self.expression, {"event": event}, meter)


def event_view(envelope: EventEnvelope) -> dict[str, Any]:
    """The envelope as filters and ``trigger.event`` see it (no tenant: it is implied)."""
    view: dict[str, Any] = msgspec.to_builtins(envelope)
    view.pop("tenant", None)
    view.setdefault("source", "")
    view.setdefault("time", None)
    view.setdefault("data", None)
    return view
