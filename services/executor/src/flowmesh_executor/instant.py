"""Expressions in a run: the CEL context, instantaneous nodes, and secret redaction. Pure.

Instantaneous nodes (noop, transform, condition, switch) are evaluated by the engine itself;
every other node type is a step the shell runs, rendering its parameters with the same
:func:`expression_context` through :func:`render_parameters`. Expressions compile once per
source (the expressions module caches them), so a workflow version's expressions compile
once per process.

Secrets (DESIGN section 12): :func:`expression_context` never holds them (``secrets`` is
empty there); only :func:`render_parameters` adds them, and only to the parameters of
:data:`SECRET_PARAMETERS` (an http node's ``url``, ``headers``, ``query`` and ``body``). So
even a definition that escaped validation cannot compute anything from a secret into an
output, an event, a task or a condition: there, ``secrets.X`` is a missing key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from flowmesh_proto.catalog import SECRET_PARAMETERS
from flowmesh_proto.workflow import (
    ConditionNode,
    Node,
    NoopNode,
    SwitchNode,
    TransformNode,
    is_plain_secret_read,
)
from flowmesh_shared.expressions import (
    ExpressionBudgetExceeded,
    ExpressionError,
    Meter,
    evaluate,
    find_templates,
    render,
)

__all__ = [
    "EXPRESSION_BUDGET",
    "EXPRESSION_ERROR",
    "MIN_FORM_LENGTH",
    "REDACTED",
    "EvaluationFailed",
    "error_class",
    "evaluate_instant",
    "expression_context",
    "redact",
    "redaction_needles",
    "render_parameters",
    "secret_forms",
]

REDACTED = "[redacted]"
#: A form of a secret other than its exact value (:func:`secret_forms`) is redacted only
#: when at least this long: a tiny secret's lowercased or decoded form would otherwise
#: redact ordinary text everywhere (a secret ``Ab`` would blank every ``ab``).
MIN_FORM_LENGTH = 4
EXPRESSION_ERROR = "ExpressionError"
#: A step whose expressions would cost more than its budget (DESIGN section 12).
EXPRESSION_BUDGET = "ExpressionBudgetExceeded"


def error_class(exc: ExpressionError) -> str:
    """The error class of a step failed by ``exc``."""
    return EXPRESSION_BUDGET if isinstance(exc, ExpressionBudgetExceeded) else EXPRESSION_ERROR


class EvaluationFailed(Exception):
    """An instantaneous node could not be evaluated; ``message`` says why (already redacted)
    and ``error_class`` what kind of failure it is."""

    def __init__(self, message: str, error_class: str = EXPRESSION_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.error_class = error_class


def expression_context(
    *,
    trigger: Mapping[str, Any],
    nodes: Mapping[str, Any],
    variables: Mapping[str, Any],
    run: Mapping[str, Any],
) -> dict[str, Any]:
    """The CEL variables: ``trigger``, ``nodes.<id>.output``, ``vars``, ``run``, and
    ``secrets`` always empty (see :func:`render_parameters`).

    ``nodes`` maps the ids of the nodes that are done to their outputs (a failed node with
    ``on_error: continue`` has output null; one rescued by a fallback has its fallback's).
    """
    return {
        "trigger": dict(trigger),
        "nodes": {node_id: {"output": output} for node_id, output in nodes.items()},
        "vars": dict(variables),
        "run": dict(run),
        "secrets": {},
    }


def render_parameters(
    type_name: str,
    parameters: Mapping[str, Any],
    variables: Mapping[str, Any],
    secrets: Mapping[str, str],
    meter: Meter | None = None,
) -> dict[str, Any]:
    """A step's parameters with every template rendered; raises ExpressionError.

    Only the parameters a ``type_name`` node sends secrets in (:data:`SECRET_PARAMETERS`)
    are rendered with ``secrets``, and only when each of their expressions that reads one
    reads it as it is (:func:`is_plain_secret_read`); every other one sees ``secrets`` empty.
    """
    sending = SECRET_PARAMETERS.get(type_name, frozenset())
    with_secrets = {**variables, "secrets": dict(secrets)} if sending else variables
    meter = Meter() if meter is None else meter
    return {
        key: render(value, with_secrets if key in sending and _plain(value) else variables, meter)
        for key, value in parameters.items()
    }


def _plain(value: Any) -> bool:
    """Whether every secret ``value``'s templates read is read as it is."""
    for _, found in find_templates(value):
        if isinstance(found, ExpressionError):
            continue  # rendering reports it
        for expression in found.expressions:
            if "secrets" in expression.references.variables and not is_plain_secret_read(
                expression.source
            ):
                return False
    return True


def evaluate_instant(
    node: Node, context: Mapping[str, Any], secrets: Mapping[str, str], meter: Meter | None = None
) -> Any:
    """The output of an instantaneous node (redacted), its expressions spending ``meter``
    (by default one :data:`~flowmesh_shared.expressions.DEFAULT_BUDGET`); raises
    :class:`EvaluationFailed`."""
    try:
        output = _evaluate(node, context, Meter() if meter is None else meter)
    except ExpressionError as exc:
        raise EvaluationFailed(redact(str(exc), secrets), error_class(exc)) from None
    return redact(output, secrets)


def _evaluate(node: Node, context: Mapping[str, Any], meter: Meter) -> Any:
    match node:
        case NoopNode():
            return None
        case TransformNode(parameters=parameters):
            return render(parameters.output, context, meter)
        case ConditionNode(parameters=parameters):
            value = evaluate(parameters.expression, context, meter)
            if not isinstance(value, bool):
                raise ExpressionError(parameters.expression, f"gave {_kind(value)}, not a boolean")
            return value
        case SwitchNode(parameters=parameters):
            value = evaluate(parameters.expression, context, meter)
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ExpressionError(
                    parameters.expression, f"gave {_kind(value)}, not a string or an integer"
                )
            case = str(value)
            return case if case in parameters.cases else "default"
    raise ValueError(f"node {node.id!r} is not instantaneous")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def redact(value: Any, secrets: Mapping[str, str]) -> Any:
    """``value`` with every secret's value (and its :func:`secret_forms`) replaced by
    :data:`REDACTED` inside its strings."""
    needles = redaction_needles(secrets.values())
    if not needles:
        return value
    return _redact(value, needles)


def redaction_needles(secrets: Iterable[str]) -> list[str]:
    """Every form of every secret, longest first (a longer one holds a shorter one)."""
    forms = {form for secret in secrets for form in secret_forms(secret)}
    return sorted(forms, key=len, reverse=True)


def secret_forms(secret: str) -> set[str]:
    """``secret``, and the forms a URL parser or a host name may have turned it into.

    A second line only: messages never name the URL sent (the http step renders its url
    again with each secret as :data:`REDACTED`). The lowercased (a host name), the
    percent-encoded (a path or query: ``/`` kept or not) and the percent-decoded forms
    count only when at least :data:`MIN_FORM_LENGTH` characters long; the exact value
    always counts.
    """
    if not secret:
        return set()
    forms = {secret.lower(), quote(secret, safe=""), quote(secret, safe="/"), unquote(secret)}
    return {secret} | {form for form in forms if len(form) >= MIN_FORM_LENGTH}


def _redact(value: Any, needles: list[str]) -> Any:
    if isinstance(value, str):
        for needle in needles:
            if needle in value:
                value = value.replace(needle, REDACTED)
        return value
    if isinstance(value, dict):
        return {_redact(key, needles): _redact(item, needles) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, needles) for item in value]
    return value
