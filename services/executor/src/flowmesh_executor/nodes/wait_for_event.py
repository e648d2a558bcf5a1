"""``wait_for_event``: the first event of type ``event`` for which ``match`` holds.

Events are read from FM_EVENTS starting at the attempt's start time, so an event published
between the step's start and the subscription, or while the run moved to another executor,
is not missed. ``match`` is a CEL expression over ``event`` (the envelope) and the run's
variables; ``timeout`` (from the attempt's start) fails the step with ``EventTimeout``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import structlog
from nats.js.api import ConsumerConfig, DeliverPolicy

from flowmesh_executor.nodes.base import StepCall, StepError, StepServices
from flowmesh_executor.nodes.params import INVALID, duration, text
from flowmesh_proto.events import event_decoder
from flowmesh_proto.subjects import SubjectError
from flowmesh_shared.expressions import ExpressionError, evaluate

log = structlog.get_logger("flowmesh.executor.wait_for_event")


async def run(call: StepCall, services: StepServices) -> Any:
    event_type = text(call.parameters.get("event"), "event")
    match = call.parameters.get("match")
    try:
        subject = services.subjects.events(call.tenant, event_type)
    except SubjectError as exc:
        raise StepError(INVALID, str(exc)) from None
    timeout = call.parameters.get("timeout")
    limit = None if timeout is None else call.started_at + duration(timeout, "timeout")
    sub = await services.js.subscribe(
        subject,
        stream=services.streams.events,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.BY_START_TIME,
        config=ConsumerConfig(opt_start_time=call.started_at),
    )
    try:
        loop = asyncio.get_running_loop()
        when = None
        if limit is not None:
            when = loop.time() + max(0.0, (limit - _now(call)).total_seconds())
        try:
            async with asyncio.timeout_at(when):
                return await _first_match(sub, match, call)
        except TimeoutError:
            raise StepError(
                "EventTimeout", f"no matching {event_type} event within {timeout}"
            ) from None
    finally:
        await sub.unsubscribe()


async def _first_match(sub: Any, match: Any, call: StepCall) -> Any:
    while True:
        msg = await sub.next_msg(timeout=None)
        try:
            envelope = event_decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.warning("wait_for_event.undecodable", subject=msg.subject)
            continue
        event = msgspec.to_builtins(envelope)
        if match is None or _holds(match, event, call):
            return event


def _holds(match: Any, event: Any, call: StepCall) -> bool:
    if not isinstance(match, str):
        raise StepError(INVALID, "match must be an expression")
    try:
        value = evaluate(match, {**call.variables, "event": event})
    except ExpressionError as exc:
        raise StepError("ExpressionError", str(exc)) from None
    return value is True


def _now(call: StepCall) -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
