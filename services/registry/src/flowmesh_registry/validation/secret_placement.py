"""Where an expression may read ``secrets`` (DESIGN section 12). Pure.

A secret leaves Flowmesh only in the request it is sent with: ``secrets.<NAME>`` may appear
in an ``http`` node's ``url``, ``headers``, ``query`` and ``body`` (a map's per-item ``http``
template included: it is an http call too), nowhere else. Anywhere else (a transform, a
condition, a switch, a publish, a task's or a workflow's input, a map's items, a
wait_for_event match, a delay, ``method`` or ``expect_status``, a concurrency key, a trigger
filter), a value computed from it (``bytes(...)``, ``size(...)``, ``startsWith(...)``) could
reach a stored output, an event or a log, where exact-value redaction does not see it.
Such a read is refused with ``SECRET_NOT_ALLOWED`` at its path.
"""

from __future__ import annotations

from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.workflow import SECRET_PARAMETERS
from flowmesh_registry.validation.problems import Problems

__all__ = ["SECRETS", "refuse_secret", "secrets_allowed"]

#: The root an expression reads secrets through.
SECRETS = "secrets"
_WHERE = ", ".join(
    f"{type_name} node's {', '.join(sorted(names))}"
    for type_name, names in sorted(SECRET_PARAMETERS.items())
)


def secrets_allowed(type_name: str, parameter: str) -> bool:
    """Whether the parameter ``parameter`` of a ``type_name`` node may read ``secrets``."""
    return parameter in SECRET_PARAMETERS.get(type_name, frozenset())


def refuse_secret(path: str, problems: Problems) -> None:
    """Report a read of ``secrets`` at ``path``, where no secret may be read."""
    message = f"secrets may be read only in an {_WHERE} (the request they are sent with)"
    problems.add(path, ErrorCode.SECRET_NOT_ALLOWED, message)
