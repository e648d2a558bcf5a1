"""Serving one delivered task: decode, run the function, heartbeat, answer, settle.

The answer goes to the executor's inbox (header ``Fm-Reply-To``) before the message is
acked, on the same connection, so the server never sees the ack without the answer. A
request that cannot be decoded is terminated (no redelivery); one without a reply subject,
or whose deadline has passed (the executor stopped waiting), is acked without running.
When serving is cancelled (the worker stops), the function is cancelled and the message
nak'd, so another worker takes it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from flowmesh_proto.tasks import (
    REPLY_TO,
    TaskError,
    TaskHeartbeat,
    TaskRequest,
    TaskResult,
    task_request_decoder,
)
from flowmesh_worker.context import Handler, TaskContext

log = structlog.get_logger("flowmesh.worker")

#: Seconds a cancelled function gets to finish before its message is nak'd anyway.
CANCEL_GRACE = 5.0
_ENCODER = msgspec.json.Encoder()


async def serve(nc: Client, msg: Msg, handler: Handler, heartbeat_interval: float) -> None:
    """Serve one delivery of the task queue ``msg`` came from."""
    try:
        request = task_request_decoder.decode(msg.data)
    except msgspec.DecodeError as exc:
        log.warning("task.undecodable", subject=msg.subject, error=str(exc))
        await _settle(msg.term)
        return
    bound = log.bind(
        queue=request.queue, run_id=request.run_id, node=request.node_id, attempt=request.attempt
    )
    reply_to = (msg.headers or {}).get(REPLY_TO)
    if not reply_to:
        bound.warning("task.no_reply_subject")
        await _settle(msg.ack)
        return
    replies = _Replies(nc, msg, reply_to, request)
    if request.deadline is not None and request.deadline <= datetime.now(UTC):
        bound.info("task.expired", deadline=request.deadline.isoformat())
        await replies.send(_error(request, "DeadlineExceeded", "the deadline passed before start"))
        await _settle(msg.ack)
        return
    context = _context(request, msg, replies.heartbeat)
    await replies.heartbeat()
    work: asyncio.Task[Any] = asyncio.create_task(handler(request.input, context))
    try:
        while not (await asyncio.wait({work}, timeout=heartbeat_interval))[0]:
            await replies.heartbeat()
    except asyncio.CancelledError:
        work.cancel()
        await asyncio.wait({work}, timeout=CANCEL_GRACE)
        await _settle(msg.nak)
        bound.info("task.released")
        raise
    await replies.send(_outcome(work, request, bound))
    await _settle(msg.ack)


def _context(request: TaskRequest, msg: Msg, beat: Callable[[], Awaitable[None]]) -> TaskContext:
    return TaskContext(
        tenant=request.tenant,
        queue=request.queue,
        run_id=request.run_id,
        workflow_id=request.workflow_id,
        version=request.version,
        node_id=request.node_id,
        attempt=request.attempt,
        idempotency_key=request.idempotency_key,
        deadline=request.deadline,
        delivery=msg.metadata.num_delivered,
        _beat=beat,
    )


def _outcome(work: asyncio.Task[Any], request: TaskRequest, bound: Any) -> bytes:
    """The encoded answer for a finished function."""
    if work.cancelled():
        return _error(request, "CancelledError", "the task function was cancelled")
    exc = work.exception()
    if exc is not None:
        bound.warning("task.failed", error_class=type(exc).__name__, exc_info=exc)
        return _error(request, type(exc).__name__, str(exc) or type(exc).__name__)
    result = TaskResult(
        idempotency_key=request.idempotency_key, attempt=request.attempt, output=work.result()
    )
    try:
        encoded = _ENCODER.encode(result)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as err:
        bound.warning("task.output_not_json", error=str(err))
        return _error(request, "OutputNotJson", f"the task's output is not JSON: {err}")
    bound.info("task.succeeded")
    return encoded


def _error(request: TaskRequest, error_class: str, message: str) -> bytes:
    return _ENCODER.encode(
        TaskError(
            idempotency_key=request.idempotency_key,
            attempt=request.attempt,
            error_class=error_class,
            message=message,
        )
    )


class _Replies:
    """Answers to one request's executor, and the message's in-progress acks."""

    def __init__(self, nc: Client, msg: Msg, reply_to: str, request: TaskRequest) -> None:
        self._nc = nc
        self._msg = msg
        self._to = reply_to
        self._request = request
        self._heartbeat = _ENCODER.encode(
            TaskHeartbeat(idempotency_key=request.idempotency_key, attempt=request.attempt)
        )

    async def heartbeat(self) -> None:
        try:
            await self._msg.in_progress()
            await self._nc.publish(self._to, self._heartbeat)
        except nats.errors.Error as exc:
            log.warning("task.heartbeat_failed", error=str(exc) or type(exc).__name__)

    async def send(self, payload: bytes) -> None:
        try:
            try:
                await self._nc.publish(self._to, payload)
            except nats.errors.MaxPayloadError:
                limit = self._nc.max_payload
                message = f"the answer ({len(payload)} bytes) exceeds the server's {limit} bytes"
                await self._nc.publish(self._to, _error(self._request, "OutputTooLarge", message))
        except nats.errors.Error as exc:
            log.warning("task.reply_failed", error=str(exc) or type(exc).__name__)


async def _settle(action: Callable[[], Awaitable[None]]) -> None:
    """Ack, nak or term; a failure only means JetStream will redeliver later."""
    try:
        await action()
    except nats.errors.Error as exc:
        log.warning("task.settle_failed", error=str(exc) or type(exc).__name__)
