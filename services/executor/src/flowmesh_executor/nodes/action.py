"""The ``action`` step (DESIGN section 16): an action's HTTP call through a connector.

1. The action is the one the run read when it was taken up (``call.actions``, by name and
   pinned version); none: ``ActionNotFound``, never retried.
2. The node's ``input`` (its templates already rendered over the run's variables, per item
   in a map) must match the action's ``input_schema``: otherwise ``ActionInputInvalid``,
   never retried, naming the first problems' paths; nothing is sent.
3. The action's request is rendered from ``input`` alone
   (:func:`~flowmesh_executor.nodes.action_templates.render_request`) and sent exactly as an
   ``http`` node naming the connector would send it (:func:`.http.exchange`: connector
   join and path rule, default headers, auth and OAuth2 token, Idempotency-Key,
   traceparent, SSRF guard, response size limit, redaction). Every status is an answer.
4. The answer, with the step's secrets (the connector's, an OAuth2 token) redacted from it
   first, so that no expression computes a form of them that redaction would not know,
   becomes the output, or ``HttpStatus`` / ``ActionFailed`` with the action's
   message (:func:`~flowmesh_executor.nodes.action_templates.read_answer`); both follow the
   node's retry policy, as an http node's failures do.

Messages name the action; secrets (the connector's, an OAuth2 token) are redacted from them
and from the output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from flowmesh_executor.instant import redact
from flowmesh_executor.nodes import http
from flowmesh_executor.nodes.action_templates import read_answer, render_request
from flowmesh_executor.nodes.base import StepCall, StepError, StepServices
from flowmesh_proto.actions import Action
from flowmesh_shared.expressions import Meter
from flowmesh_shared.json_schemas import compile_schema, content_key, schema_problems

__all__ = ["INPUT_INVALID", "NOT_FOUND", "run"]

NOT_FOUND = "ActionNotFound"
INPUT_INVALID = "ActionInputInvalid"
#: Problems an ``ActionInputInvalid`` message names at most.
NAMED_PROBLEMS = 3
#: Characters of one problem's message an ``ActionInputInvalid`` message quotes.
PROBLEM_CHARS = 160


async def run(call: StepCall, services: StepServices) -> Any:
    """Check the input, send the action's request, read its answer."""
    action = _action(call)
    name = action.name
    input = call.parameters.get("input") or {}
    await _check_input(action, input, services)
    meter = Meter(call.expression_budget)
    await services.turns.take()
    try:
        rendered = render_request(name, action.spec.request, input, meter)
    finally:
        services.turns.spend(meter.spent)
    connector = call.parameters.get("connector")

    def build(sending: StepCall) -> http.HttpRequest:
        return http.assemble(
            sending,
            method=rendered.method,
            url=None,
            connector=connector,
            path=rendered.path,
            headers=rendered.headers,
            query=rendered.query,
            body=rendered.body,
            expect_status=None,
            shown=_shown(call, connector, rendered.path),
            any_status=True,
        )

    async def read(answer: dict[str, Any], secrets: Mapping[str, str]) -> Any:
        where = f"{rendered.method} {_shown(call, connector, rendered.path)}"
        # an API may echo the credentials: the result's expressions could compute a form
        # of them that no redaction of the output would recognise (base64, a prefix test)
        answer = redact(answer, secrets)
        await services.turns.take()
        before = meter.spent
        try:
            return read_answer(
                name,
                action.spec.result,
                action.spec.request.expect_status,
                answer,
                input,
                where=where,
                secrets=tuple(secrets.values()),
                meter=meter,
            )
        finally:
            services.turns.spend(meter.spent - before)

    return await http.exchange(call, services, build, read)


def _action(call: StepCall) -> Action:
    name = call.parameters.get("action")
    version = call.parameters.get("version")
    action = call.actions.get((name, version)) if isinstance(name, str) else None
    if action is None:
        pinned = "" if version is None else f" version {version}"
        raise StepError(NOT_FOUND, f"action {name}{pinned} does not exist")
    return action


async def _check_input(action: Action, input: Any, services: StepServices) -> None:
    """``ActionInputInvalid`` unless ``input`` matches the action's input schema. A schema
    not compiled yet is compiled in a worker thread (its patterns may take tens of
    milliseconds), never on the loop every tenant's steps share."""
    schema = action.spec.input_schema
    key = content_key(schema)
    validator = services.schemas.known(key)
    if validator is None:
        validator = await asyncio.to_thread(compile_schema, schema)
        services.schemas.keep(key, validator)
    if isinstance(validator, str):
        message = f"action {action.name}: its input schema cannot be used: {validator}"
        raise StepError(INPUT_INVALID, message)
    problems = schema_problems(validator, input, root="input")
    if problems:
        named = "; ".join(f"{p.path}: {_cut(p.message)}" for p in problems[:NAMED_PROBLEMS])
        more = len(problems) - NAMED_PROBLEMS
        if more > 0:
            named += f" (and {more} more)"
        message = f"action {action.name}: the input does not match its schema: {named}"
        raise StepError(INPUT_INVALID, message)


def _shown(call: StepCall, connector: object, path: str) -> str:
    """The URL messages name: the connector's base URL, then the rendered path as written."""
    found = call.connectors.get(connector) if isinstance(connector, str) else None
    prefix = found.base_url.rstrip("/") if found else f"(connector {connector})"
    return http.shown_form(prefix + path)


def _cut(text: str) -> str:
    """A problem's message (it may quote the input's value) cut to a readable length."""
    return text if len(text) <= PROBLEM_CHARS else text[:PROBLEM_CHARS] + "..."
