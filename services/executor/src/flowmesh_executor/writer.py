"""A run's event log on ``<prefix>.<t>.runs.<run_id>``: fenced publishing (reading it is
the run lifecycle's, :meth:`~flowmesh_shared.runlife.RunLifecycle.history`).

Fencing (DESIGN section 5): every event goes out with ``Nats-Expected-Last-Subject-Sequence``
equal to the last sequence this writer saw on the run's subject, so of two executors that
both believe they own a run, only one advances it; the other gets :class:`Fenced` and stops.

A publish whose reply was lost (a timeout, NATS restarting) is sent again with the same
expected sequence and ``Nats-Msg-Id``. If the first one had been stored, the server answers
"wrong last sequence" (it checks the sequence before duplicates): the writer then reads the
subject's last message, and when that message carries its own id the publish had landed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

import msgspec
import nats.errors
import structlog
from nats.js import JetStreamContext
from nats.js import errors as js_errors

from flowmesh_executor.lease import RunLease
from flowmesh_proto import headers as h
from flowmesh_proto.runs import RunEvent
from flowmesh_shared.jetstream import WRONG_LAST_SEQUENCE

log = structlog.get_logger("flowmesh.executor.runlog")

_ENCODER = msgspec.json.Encoder()
_TRANSIENT = (TimeoutError, nats.errors.Error, js_errors.ServiceUnavailableError)


class Fenced(Exception):
    """Another executor advanced this run: stop working on it, publish nothing more."""


class LogUnavailable(Exception):
    """NATS did not take the event within the writer's patience (it keeps the lease's)."""


@dataclass(slots=True)
class RunWriter:
    """Publishes one run's events, each fenced on the sequence before it."""

    js: JetStreamContext
    stream: str
    subject: str
    last_seq: int
    patience: float = 30.0
    published: int = 0
    #: Makes this writer's message ids its own (two writers at one sequence never collide).
    token: str = field(default_factory=lambda: secrets.token_hex(6))
    #: Read the subject's last message with a direct get (see
    #: :func:`~flowmesh_shared.runlife_nats.reads_direct`).
    direct: bool = True
    #: The lease on the run's request; nothing is published once it may have lapsed.
    lease: RunLease = field(default_factory=RunLease.unbounded)

    async def publish(self, event: RunEvent, extra_headers: dict[str, str] | None = None) -> int:
        """Publish ``event`` after ``last_seq``; returns its sequence. Raises :class:`Fenced`,
        and :class:`~flowmesh_executor.lease.LeaseLost` before sending once the lease lapsed."""
        data = _ENCODER.encode(event)
        msg_id = f"{self.token}:{self.last_seq}"
        headers = {h.EXPECTED_LAST_SUBJECT_SEQUENCE: str(self.last_seq), h.MSG_ID: msg_id}
        if extra_headers:
            headers.update(extra_headers)
        delay = 0.05
        deadline = asyncio.get_running_loop().time() + self.patience
        while True:
            self.lease.check(time.monotonic())
            try:
                ack = await self.js.publish(self.subject, data, headers=headers, timeout=2.0)
            except js_errors.BadRequestError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                seq = await self._landed(msg_id)
                if seq is None:
                    raise Fenced(f"{self.subject}: another writer is past {self.last_seq}") from exc
                self.last_seq = seq
                break
            except _TRANSIENT as exc:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise LogUnavailable(f"{self.subject}: {type(exc).__name__}") from exc
                log.warning("runlog.publish_retry", subject=self.subject, error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self.last_seq = ack.seq
            break
        self.published += 1
        return self.last_seq

    async def _landed(self, msg_id: str) -> int | None:
        """The sequence of our own message if it is the subject's last one, else None."""
        try:
            last = await self.js.get_last_msg(self.stream, self.subject, direct=self.direct)
        except js_errors.NotFoundError:
            return None
        if (last.headers or {}).get(h.MSG_ID) == msg_id:
            return last.seq
        return None
