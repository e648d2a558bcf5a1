"""An action's templates applied (:mod:`flowmesh_proto.actions`): the request rendered from
the step's input, and the answer read into the step's output or error. Pure.

Rendering (:func:`render_request`) reads ``input`` only. Only what the action wrote is
walked: a member of a map written in the action (``headers``, ``query``, a ``body`` map and
the maps inside it) whose template renders to null is left out; a rendered value is never
walked again, so the nulls inside it are kept and a string of the input holding ``{{ }}``
is sent as it is (the input cannot inject a template). In a ``path`` written with text
around its templates (``/users/{{ input.id }}``), each template's value is one segment:
``/ ? #`` and ``%`` in it are percent-encoded (:func:`render_path`), so an input cannot add
segments or a query (and an encoded ``/`` or ``%`` is then refused by the connector path
rule); a path that is one template alone is the value as it is, checked by that rule.

Reading (:func:`read_answer`) evaluates the result's expressions over ``response``
(``{status, headers, body}``) and ``input``: a status the action does not expect fails
with ``HttpStatus``, an expected one that ``failure`` says failed with ``ActionFailed``,
each with the action's ``message`` (or an excerpt of the body when it gives no string).
An answer the expressions cannot read (a text body where JSON was expected) fails with
``ActionFailed`` saying so, never with a crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import msgspec

from flowmesh_executor.instant import EXPRESSION_BUDGET
from flowmesh_executor.nodes.answers import body_excerpt
from flowmesh_executor.nodes.base import StepError
from flowmesh_proto.actions import ActionRequest, ActionResult
from flowmesh_shared.expressions import (
    ExpressionBudgetExceeded,
    ExpressionError,
    Meter,
    evaluate,
    has_template,
    parse_template,
    render,
    render_template,
)

__all__ = [
    "ACTION_FAILED",
    "ACTION_TEMPLATE",
    "HTTP_STATUS",
    "MAX_MESSAGE_CHARS",
    "RenderedRequest",
    "read_answer",
    "render_path",
    "render_request",
]

#: The answer says the action failed (or cannot be read as the action reads it).
ACTION_FAILED = "ActionFailed"
#: The action's request cannot be rendered from this input (never retried).
ACTION_TEMPLATE = "ActionTemplateError"
HTTP_STATUS = "HttpStatus"
#: Characters of a message the action's ``message`` gives that an error quotes.
MAX_MESSAGE_CHARS = 300
#: Bytes of an answer's body an excerpt is read from (it quotes fewer characters).
EXCERPT_READ = 1024


@dataclass(frozen=True, slots=True)
class RenderedRequest:
    """An action's request rendered: what the http step's request assembly checks."""

    method: str
    path: Any
    headers: Any
    query: Any
    body: Any


def render_request(
    name: str, request: ActionRequest, input: Mapping[str, Any], meter: Meter
) -> RenderedRequest:
    """``request`` rendered over ``{input}``; ``ActionTemplateError`` (or
    ``ExpressionBudgetExceeded``) naming the action and the part when it cannot be."""
    context = {"input": dict(input)}
    parts: dict[str, Any] = {}
    for part, value in (
        ("path", request.path),
        ("headers", request.headers),
        ("query", request.query),
        ("body", request.body),
    ):
        try:
            if part == "path":
                parts[part] = render_path(value, context, meter)
            else:
                parts[part] = _render_written(value, context, meter)
        except ExpressionBudgetExceeded as exc:
            raise StepError(EXPRESSION_BUDGET, f"action {name}: request {part}: {exc}") from None
        except ExpressionError as exc:
            message = f"action {name}: its request's {part} cannot be rendered: {exc}"
            raise StepError(ACTION_TEMPLATE, message) from None
    if not isinstance(parts["path"], str):
        kind = _kind(parts["path"])
        raise StepError(ACTION_TEMPLATE, f"action {name}: its path rendered {kind}, not a string")
    return RenderedRequest(method=request.method, **parts)


#: What a template's value keeps as it is inside a path segment: RFC 3986's ``pchar``
#: (unreserved, sub-delims, ``:`` and ``@``); ``/ ? # %`` and the rest are encoded.
SEGMENT_SAFE = "-._~!$&'()*+,;=:@"


def render_path(path: Any, context: Mapping[str, Any], meter: Meter) -> Any:
    """An action's path rendered: a template alone is its value; a template with text
    around it gives one percent-encoded segment."""
    if not isinstance(path, str) or not has_template(path):
        return path
    template = parse_template(path)
    if template.typed:
        return render_template(template, context, meter)
    return "".join(
        segment
        if isinstance(segment, str)
        else quote(_text(evaluate(segment, context, meter)), safe=SEGMENT_SAFE)
        for segment in template.segments
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _render_written(value: Any, context: Mapping[str, Any], meter: Meter) -> Any:
    """Render what the action wrote; a map's members rendering null are left out."""
    if isinstance(value, dict):
        rendered = {key: _render_written(item, context, meter) for key, item in value.items()}
        return {key: item for key, item in rendered.items() if item is not None}
    if isinstance(value, list):
        return [_render_written(item, context, meter) for item in value]
    return render(value, context, meter)  # a string's result is not walked again


def read_answer(
    name: str,
    result: ActionResult,
    expect_status: Iterable[int],
    answer: Mapping[str, Any],
    input: Mapping[str, Any],
    *,
    where: str,
    secrets: Iterable[str],
    meter: Meter,
) -> Any:
    """The step's output from ``answer`` (``{status, headers, body}``), or the StepError the
    action makes of it. ``where``: method and URL as messages name them."""
    status = answer.get("status")
    expected = set(expect_status)
    context = {"response": dict(answer), "input": dict(input)}
    if not (status in expected if expected else isinstance(status, int) and 200 <= status <= 299):
        fallback = f"{where} answered {status}"
        excerpt = _excerpt(answer.get("body"), secrets)
        message = _message(
            result, context, meter, f"{fallback}: {excerpt}" if excerpt else fallback
        )
        raise StepError(HTTP_STATUS, f"action {name}: {message}")
    if result.failure is not None:
        failed = _evaluate(name, result.failure, context, meter, answer, secrets, "failure")
        if not isinstance(failed, bool):
            reason = f"its failure expression gave {_kind(failed)}, not a boolean"
            raise StepError(ACTION_FAILED, f"action {name}: {reason}")
        if failed:
            fallback = f"{where} answered {status} and the action says it failed"
            excerpt = _excerpt(answer.get("body"), secrets)
            message = _message(
                result, context, meter, f"{fallback}: {excerpt}" if excerpt else fallback
            )
            raise StepError(ACTION_FAILED, f"action {name}: {message}")
    if result.output is None:
        return answer.get("body")
    return _evaluate(name, result.output, context, meter, answer, secrets, "output")


def _evaluate(
    name: str,
    source: str,
    context: Mapping[str, Any],
    meter: Meter,
    answer: Mapping[str, Any],
    secrets: Iterable[str],
    what: str,
) -> Any:
    """A result expression's value; a StepError saying the answer cannot be read."""
    try:
        return evaluate(source, context, meter)
    except ExpressionBudgetExceeded as exc:
        raise StepError(EXPRESSION_BUDGET, f"action {name}: result {what}: {exc}") from None
    except ExpressionError as exc:
        status = answer.get("status")
        excerpt = _excerpt(answer.get("body"), secrets)
        message = (
            f"action {name}: the answer ({status}) cannot be read as the action reads it "
            f"({what}: {exc.reason})"
        )
        if excerpt:
            message += f": {excerpt}"
        raise StepError(ACTION_FAILED, message) from None


def _message(result: ActionResult, context: Mapping[str, Any], meter: Meter, fallback: str) -> str:
    """The action's message for a failure, or ``fallback`` when it gives no string."""
    if result.message is None:
        return fallback
    try:
        message = evaluate(result.message, context, meter)
    except ExpressionError:
        return fallback
    if not isinstance(message, str) or not message.strip():
        return fallback
    text = "".join(c if c.isprintable() else " " for c in message).strip()
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."


def _excerpt(body: Any, secrets: Iterable[str]) -> str:
    """A short excerpt of a decoded body (JSON again when it was), secrets redacted: read
    from its first :data:`EXCERPT_READ` bytes only (a body may be as large as the executor
    reads; quoting is character by character, on the executor's loop)."""
    if body is None:
        return ""
    raw = body.encode() if isinstance(body, str) else msgspec.json.encode(body)
    return body_excerpt(raw[:EXCERPT_READ], secrets, cut=len(raw) > EXCERPT_READ)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
