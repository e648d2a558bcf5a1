"""Starting runs: what a cron tick, a matching event or a due timer publishes.

A new run (cron, event) is started the way every run is (DESIGN sections 3 and 5): its
``run.queued`` on the run's subject, fenced on an empty subject (``Nats-Msg-Id:
queued:<run_id>``), then its :class:`RunRequest` on the tenant's request subject with a
``Nats-Msg-Id`` that names the fire. The run id is derived from the fire's name, so every
replica firing the same tick or matching the same event names the same run: the second
``run.queued`` finds the subject taken (or is a duplicate) and the second request is
dropped by JetStream. If the subject is taken but the run is still only queued (a replica
died between its two publishes), the request is sent again: a duplicate if it had landed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.kv import KeyValue

from flowmesh_proto import headers as h
from flowmesh_proto.msgids import idempotency_key, opening_msg_id
from flowmesh_proto.runs import (
    RunQueued,
    RunRequest,
    TriggerInfo,
    run_event_decoder,
    run_queued,
)
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_proto.timers import derived_run_id
from flowmesh_shared.jetstream import WRONG_LAST_SEQUENCE

log = structlog.get_logger("flowmesh.scheduler.firing")

_encoder = msgspec.json.Encoder()


class Fire(msgspec.Struct, frozen=True, kw_only=True):
    """A run to start: ``name`` identifies the fire (``cron:<wf>:<trigger>:<time>``,
    ``event:<wf>:<trigger>:<event id>``); ``at`` gives the run id its time."""

    tenant: str
    workflow_id: str
    version: int
    name: str
    at: datetime
    trigger: TriggerInfo
    input: Any = None


class Starter:
    def __init__(
        self,
        js: JetStreamContext,
        subjects: Subjects,
        streams: StreamNames,
        claims: KeyValue | None = None,
    ) -> None:
        self.js, self.subjects, self.streams = js, subjects, streams
        self.claims = claims

    async def start(
        self, fire: Fire, headers: dict[str, str] | None = None, *, claim: bool = False
    ) -> str:
        """Start the run ``fire`` names (once, whoever else fires it); its run id.

        ``claim``: the name alone must decide the run, whatever ``at`` this fire has (an
        event sent again with another time): the first run id made for the name is kept
        in the idempotency bucket (:func:`~flowmesh_proto.msgids.idempotency_key` of the
        name) and every later fire of the name uses it.
        """
        run_id = derived_run_id(fire.name, fire.at)
        if claim and self.claims is not None:
            run_id = await self._claim(fire, run_id)
        now = datetime.now(UTC)
        request = RunRequest(
            tenant=fire.tenant,
            run_id=run_id,
            workflow_id=fire.workflow_id,
            version=fire.version,
            trigger=fire.trigger,
            input=fire.input,
            requested_at=now,
        )
        queued = run_queued(request, now)
        subject = self.subjects.run_events(fire.tenant, run_id)
        fence = {h.EXPECTED_LAST_SUBJECT_SEQUENCE: "0", h.MSG_ID: opening_msg_id(queued)}
        try:
            await self.js.publish(
                subject, _encoder.encode(queued), stream=self.streams.run_events, headers=fence
            )
        except js_errors.BadRequestError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE:
                raise
            if not await self._only_queued(subject):
                return run_id  # fired by another replica, and running or done
        await self.request(request, fire.name, headers)
        return run_id

    async def request(
        self, request: RunRequest, msg_id: str, headers: dict[str, str] | None = None
    ) -> None:
        """Publish ``request`` (JetStream drops it if ``msg_id`` was published already)."""
        await self.js.publish(
            self.subjects.run_requests(request.tenant),
            _encoder.encode(request),
            stream=self.streams.run_requests,
            headers={**(headers or {}), h.MSG_ID: msg_id},
        )

    async def _claim(self, fire: Fire, run_id: str) -> str:
        key = idempotency_key(fire.tenant, fire.workflow_id, fire.name)
        assert self.claims is not None
        try:
            await self.claims.create(key, run_id.encode())
            return run_id
        except js_errors.KeyWrongLastSequenceError:
            entry = await self.claims.get(key)
        return (entry.value or b"").decode() or run_id

    async def _only_queued(self, subject: str) -> bool:
        try:
            last = await self.js.get_last_msg(self.streams.run_events, subject, direct=True)
        except js_errors.NotFoundError:
            return False
        return isinstance(run_event_decoder.decode(last.data or b""), RunQueued)
