"""``wait_for_event``: the first event of type ``event`` for which ``match`` holds.

Events are read from FM_EVENTS starting at the attempt's start time, so an event published
between the step's start and the subscription, or while the run moved to another executor,
is not missed. ``match`` is a CEL expression over ``event`` (the envelope) and the run's
variables; ``timeout`` (from the attempt's start) fails the step with ``EventTimeout``.
A stored copy of an event the event-ids ledger already counts (same tenant and id, stored
again) is not an event: the step never takes a tenant's event twice (docs/events.md).

Once the events stored so far are read and none matched, the step says it waits long
(:attr:`StepCall.long_wait`, with what would end it): the run may be parked, its wait kept
in the event-waits bucket for the scheduler, which asks for the run again when a matching
event arrives (or the timeout comes). A match that reads ``secrets``, or run variables too
large to keep, is never parked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from nats.js.api import ConsumerConfig, DeliverPolicy

from flowmesh_executor.nodes.base import EventInterest, StepCall, StepError, StepServices
from flowmesh_executor.nodes.params import INVALID, duration, text
from flowmesh_proto.events import event_decoder
from flowmesh_proto.subjects import SubjectError
from flowmesh_proto.timers import event_wait_key
from flowmesh_shared.expressions import (
    ExpressionBudgetExceeded,
    ExpressionError,
    Meter,
    compile_expression,
    evaluate,
)

log = structlog.get_logger("flowmesh.executor.wait_for_event")

#: The run variables a parked wait may keep for its match (bytes of JSON).
MAX_PARKED_VARIABLES = 64 * 1024


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

        async def caught_up() -> None:
            interest = _interest(event_type, match, call)
            if interest is not None and call.long_wait is not None:
                call.long_wait(limit, interest)

        try:
            async with asyncio.timeout_at(when):
                event = await _first_match(sub, match, call, caught_up, services)
        except TimeoutError:
            await _forget(call, services)
            raise StepError(
                "EventTimeout", f"no matching {event_type} event within {timeout}"
            ) from None
        await _forget(call, services)
        return event
    finally:
        await sub.unsubscribe()


async def _forget(call: StepCall, services: StepServices) -> None:
    """The wait is over: a parked copy of it (if any) must wake nothing more. (Cancelled,
    the step keeps it: that is how a parked run's step ends in this process.)"""
    if services.event_waits is not None:
        key = event_wait_key(call.tenant, call.run_id, call.node.id)
        with contextlib.suppress(Exception):  # KeyNotFoundError: it never parked
            await services.event_waits.get(key)
            await services.event_waits.purge(key)


def _interest(event_type: str, match: Any, call: StepCall) -> EventInterest | None:
    """What the scheduler needs to match events for this step, or None (not parkable)."""
    if match is not None and not isinstance(match, str):
        return None
    roots: frozenset[str] = frozenset()
    if match is not None:
        try:
            roots = compile_expression(match).references.variables
        except ExpressionError:
            return None
    if "secrets" in roots:
        return None
    variables = {root: call.variables[root] for root in roots if root in call.variables}
    variables.pop("event", None)
    if len(msgspec.json.encode(variables)) > MAX_PARKED_VARIABLES:
        return None
    return EventInterest(event=event_type, match=match, variables=variables)


async def _first_match(
    sub: Any,
    match: Any,
    call: StepCall,
    caught_up: Callable[[], Awaitable[None]],
    services: StepServices,
) -> Any:
    told = False
    read = 0
    while True:
        if not told and sub.pending_msgs == 0:
            # Caught up: nothing left in the stream for this consumer, and every message it
            # delivered has been read here (not merely sent: some may still be on the way).
            info = await sub.consumer_info()
            delivered = info.delivered.consumer_seq if info.delivered else -1
            if info.num_pending == 0 and delivered == read:
                told = True
                await caught_up()
        msg = await sub.next_msg(timeout=None)
        read += 1
        try:
            envelope = event_decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.warning("wait_for_event.undecodable", subject=msg.subject)
            continue
        if envelope.tenant != call.tenant:
            continue
        event = msgspec.to_builtins(envelope)
        if match is None or await _holds(match, event, call, services):
            seq = msg.metadata.sequence.stream
            if await services.event_ids.is_copy(call.tenant, envelope.id, seq):
                log.info("wait_for_event.copy_ignored", node=call.node.id, event_id=envelope.id)
                continue
            return event


async def _holds(match: Any, event: Any, call: StepCall, services: StepServices) -> bool:
    """Whether ``event`` ends the wait. A ``match`` that fails on an event (a field that
    event lacks) is no match, as for a parked wait and an event trigger's filter: an
    event of the right type from some other producer must not fail the waiting run."""
    if not isinstance(match, str):
        raise StepError(INVALID, "match must be an expression")
    meter = Meter(call.expression_budget)
    await services.turns.take()
    try:
        value = evaluate(match, {**call.variables, "event": event}, meter)
    except ExpressionBudgetExceeded as exc:
        log.warning("wait_for_event.match_over_budget", node=call.node.id, error=str(exc))
        return False
    except ExpressionError as exc:
        log.info("wait_for_event.match_failed", node=call.node.id, error=str(exc))
        return False
    finally:
        services.turns.spend(meter.spent)
    return value is True


def _now(call: StepCall) -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
