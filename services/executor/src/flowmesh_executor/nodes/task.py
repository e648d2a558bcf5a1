"""``task``: hand ``input`` to an external worker serving ``queue``, and await its answer.

The request goes to ``<prefix>.<t>.tasks.<queue>`` (stream FM_TASKS, a work queue: one
worker takes it, and it waits there until some worker comes). Workers fetch it from the
queue's durable consumer ``tasks_<t>_<queue>``, which the executor creates (or updates)
before it publishes: tenants' workers may only fetch and ack, never make consumers. The
worker answers on ``<prefix>.<t>.task-replies.<token>`` (a fresh token per call, named by
the ``Fm-Reply-To`` header and subscribed before the publish): a tenant's workers may
publish there for their own tenant only, so none can answer another tenant's task. It
sends ``heartbeat`` (keep waiting), then ``result`` (the step's output) or ``error`` (the
step fails with the worker's error class). No reply at all means no worker yet: keep
waiting.
The node's ``timeout`` bounds the whole wait (``TaskTimeout``); the shell also cancels the
step at the attempt's deadline.

Redelivery. The reply subject lives only as long as this call, so every execution must publish a
request that some worker will still answer. ``Nats-Msg-Id`` is therefore
``<idempotency key>:<attempt>:<token>`` with a token fresh per execution: it makes this
call's own publish retries (an ack lost to a timeout) land once, while a re-run of the same
attempt by another executor (the first one died) publishes a new request instead of being
deduplicated against a request whose answer would go to a dead subject. A worker may thus
see one attempt twice (steps are at-least-once, DESIGN section 5); ``idempotency_key`` is
what lets it make its side effects idempotent, and the request's ``deadline`` lets it drop
a request nobody waits for any more.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import nats.errors
import structlog
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from flowmesh_executor.nodes.base import StepCall, StepError, StepServices
from flowmesh_executor.nodes.params import INVALID, duration, text
from flowmesh_proto import headers as h
from flowmesh_proto.subjects import SubjectError
from flowmesh_proto.tasks import (
    REPLY_TO,
    TaskError,
    TaskHeartbeat,
    TaskRequest,
    TaskResult,
    task_consumer,
    task_reply_decoder,
)

log = structlog.get_logger("flowmesh.executor.task")

TIMEOUT = "TaskTimeout"
UNAVAILABLE = "TaskUnavailable"
#: The error class used when a worker names none.
WORKER_ERROR = "TaskError"
MAX_ERROR_CLASS = 100
MAX_ERROR_MESSAGE = 4096
PUBLISH_TRIES = 3
_ENCODER = msgspec.json.Encoder()


async def run(call: StepCall, services: StepServices) -> Any:
    queue = text(call.parameters.get("queue"), "queue")
    raw_timeout = call.parameters.get("timeout")
    timeout = None if raw_timeout is None else duration(raw_timeout, "timeout")
    try:
        subject = services.subjects.tasks(call.tenant, queue)
    except SubjectError as exc:
        raise StepError(INVALID, str(exc)) from None

    loop = asyncio.get_running_loop()
    when = None if timeout is None else loop.time() + timeout.total_seconds()
    request = _request(call, queue, datetime.now(UTC), timeout)
    reply_to = services.subjects.task_replies(call.tenant, secrets.token_hex(12))
    sub = await services.nc.subscribe(reply_to)
    scope = asyncio.timeout_at(when)
    try:
        async with scope:
            await ensure_consumer(services, call.tenant, queue, subject)
            await _publish(services.js, subject, request, reply_to, call)
            return await _answer(sub, call)
    except TimeoutError:
        if not scope.expired():
            raise
        raise StepError(TIMEOUT, f"no answer from queue {queue!r} within {raw_timeout}") from None
    except nats.errors.Error as exc:  # the connection closed under the wait
        raise StepError(UNAVAILABLE, f"lost NATS while waiting for the task: {exc}") from None
    finally:
        await sub.unsubscribe()


async def ensure_consumer(services: StepServices, tenant: str, queue: str, subject: str) -> None:
    """Create or update the queue's consumer; a failure is logged, the task still queued."""
    name = task_consumer(tenant, queue)
    config = ConsumerConfig(
        name=name,
        durable_name=name,
        filter_subject=subject,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=services.settings.task_ack_wait,
        max_deliver=-1,
        inactive_threshold=services.settings.task_consumer_idle,
    )
    try:
        await services.js.add_consumer(services.streams.tasks, config)
    except (nats.errors.Error, js_errors.Error) as exc:
        log.warning("task.consumer_failed", consumer=name, error=str(exc) or repr(exc))


def _request(call: StepCall, queue: str, now: datetime, timeout: timedelta | None) -> TaskRequest:
    ends = (call.deadline, None if timeout is None else now + timeout)
    deadlines = [end for end in ends if end is not None]
    return TaskRequest(
        tenant=call.tenant,
        queue=queue,
        run_id=call.run_id,
        workflow_id=call.workflow_id,
        version=call.version,
        node_id=call.node.id,
        attempt=call.attempt,
        idempotency_key=call.idempotency_key,
        input=call.parameters.get("input"),
        deadline=min(deadlines, default=None),
    )


async def _publish(
    js: JetStreamContext, subject: str, request: TaskRequest, reply_to: str, call: StepCall
) -> None:
    """Publish ``request``, retrying lost acks under one message id (see the module doc)."""
    msg_id = f"{call.idempotency_key}:{call.attempt}:{secrets.token_hex(8)}"
    headers = {REPLY_TO: reply_to, h.MSG_ID: msg_id}
    if call.traceparent:
        headers[h.TRACEPARENT] = call.traceparent
    payload = _ENCODER.encode(request)
    for attempt in range(1, PUBLISH_TRIES + 1):
        try:
            await js.publish(subject, payload, headers=headers)
        except nats.errors.TimeoutError:
            log.warning("task.publish_timeout", queue=request.queue, tries=attempt)
            continue
        except nats.errors.MaxPayloadError as exc:
            raise StepError(INVALID, f"the task input is too large to send: {exc}") from None
        except (nats.errors.Error, js_errors.Error) as exc:
            raise StepError(UNAVAILABLE, f"the task could not be queued: {exc}") from None
        log.debug("task.queued", queue=request.queue, node=request.node_id, msg_id=msg_id)
        return
    raise StepError(UNAVAILABLE, f"the task could not be queued: no ack in {PUBLISH_TRIES} tries")


async def _answer(sub: Subscription, call: StepCall) -> Any:
    """The output of the first ``result`` for this attempt, or its ``error`` raised."""
    while True:
        msg = await sub.next_msg(timeout=None)
        try:
            reply = task_reply_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("task.reply_undecodable", node=call.node.id, error=str(exc))
            continue
        if reply.idempotency_key != call.idempotency_key or reply.attempt != call.attempt:
            log.warning("task.reply_foreign", node=call.node.id, key=reply.idempotency_key)
            continue
        match reply:
            case TaskHeartbeat():
                continue
            case TaskResult(output=output):
                return output
            case TaskError(error_class=error_class, message=message):
                raise StepError(_error_class(error_class), _clipped(message, MAX_ERROR_MESSAGE))


def _error_class(value: str) -> str:
    value = value.strip()
    return _clipped(value, MAX_ERROR_CLASS) if value else WORKER_ERROR


def _clipped(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."
