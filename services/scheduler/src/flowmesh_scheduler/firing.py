"""Starting runs: what a cron tick, a matching event or a due timer publishes.

A new run (cron, event) is started the way every run is, by the run lifecycle
(:meth:`~flowmesh_shared.runlife.RunLifecycle.start`: its ``run.queued`` fenced on an
empty subject, then its :class:`RunRequest`). The run id is derived from the fire's name,
so every replica firing the same tick or matching the same event names the same run: the
second ``run.queued`` finds the subject taken (or is a duplicate) and the second request
is dropped by JetStream. If the subject is taken but the run is still only queued (a
replica died between its two publishes), the lifecycle sends the request again: a
duplicate if it had landed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog
from nats.js import errors as js_errors
from nats.js.kv import KeyValue

from flowmesh_proto.msgids import idempotency_key
from flowmesh_proto.runs import RunRequest, TriggerInfo
from flowmesh_proto.timers import derived_run_id
from flowmesh_shared.runlife import RunLifecycle

log = structlog.get_logger("flowmesh.scheduler.firing")


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
    def __init__(self, life: RunLifecycle, claims: KeyValue | None = None) -> None:
        self.life = life
        self.claims = claims

    async def start(
        self, fire: Fire, headers: Mapping[str, str] | None = None, *, claim: bool = False
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
        await self.life.start(request, now, trace=headers or {})
        return run_id

    async def request(
        self, request: RunRequest, msg_id: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Publish ``request`` (JetStream drops it if ``msg_id`` was published already)."""
        await self.life.request(request, msg_id, trace=headers or {})

    async def _claim(self, fire: Fire, run_id: str) -> str:
        key = idempotency_key(fire.tenant, fire.workflow_id, fire.name)
        assert self.claims is not None
        try:
            await self.claims.create(key, run_id.encode())
            return run_id
        except js_errors.KeyWrongLastSequenceError:
            entry = await self.claims.get(key)
        return (entry.value or b"").decode() or run_id
