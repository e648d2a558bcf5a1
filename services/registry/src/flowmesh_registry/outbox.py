"""The transactional outbox and its relay.

A change and its announcement are written in one transaction (:func:`enqueue`). The relay
publishes pending rows to JetStream with ``Nats-Msg-Id = outbox:<id>`` and then marks them
published: a relay that dies between the two republishes on restart, and JetStream's
duplicate window drops the copy, so a change is neither lost nor announced twice.
The relay wakes on ``NOTIFY fm_outbox`` and also polls, in case a notification was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import structlog

from flowmesh_proto import headers
from flowmesh_proto.registry import WorkflowChanged
from flowmesh_proto.subjects import Subjects
from flowmesh_registry.db import Database

log = structlog.get_logger("flowmesh.registry.outbox")

WORKFLOW_CHANGED = "workflow.changed"

INSERT_OUTBOX = """
INSERT INTO outbox (tenant_id, subject_kind, payload) VALUES ($1, $2, $3)"""
PENDING = "SELECT tenant_id, id, subject_kind, payload FROM fm_outbox_pending($1)"
MARK_PUBLISHED = "SELECT fm_outbox_mark_published($1::bigint[])"
PRUNE = "SELECT fm_outbox_prune(make_interval(secs => $1))"

_encoder = msgspec.json.Encoder()


async def enqueue(conn: asyncpg.Connection, tenant: str, kind: str, payload: Any) -> None:
    await conn.execute(INSERT_OUTBOX, tenant, kind, payload)


def workflow_changed_payload(
    *, workflow_id: str, change: str, version: int, enabled: bool, triggers: list[Any]
) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "change": change,
        "version": version,
        "enabled": enabled,
        "triggers": triggers,
        "at": datetime.now(UTC).isoformat(),
    }


class OutboxRelay:
    """Publishes outbox rows to JetStream in order; one task, woken by NOTIFY or a timer."""

    def __init__(
        self,
        db: Database,
        js: Any,
        subjects: Subjects,
        *,
        listen_dsn: str,
        poll_interval: float = 1.0,
        batch_size: int = 100,
        keep_published_seconds: float = 3600.0,
    ) -> None:
        self._db = db
        self._js = js
        self._subjects = subjects
        self._listen_dsn = listen_dsn
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._keep_published = keep_published_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self.published = 0

    async def start(self) -> None:
        self._stopping.clear()
        try:
            self._listener = await asyncpg.connect(self._listen_dsn)
            await self._listener.add_listener("fm_outbox", self._on_notify)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("outbox.listen_unavailable", error=str(exc))
            self._listener = None
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def _run(self) -> None:
        last_prune = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                while await self.relay_once() == self._batch_size:
                    pass
                if loop.time() - last_prune > 60:
                    last_prune = loop.time()
                    async with self._db.system_conn() as conn:
                        await conn.fetchval(PRUNE, self._keep_published)
            except Exception as exc:  # keep relaying: a failure here must not stop the loop
                log.warning("outbox.relay_failed", error=str(exc), error_type=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def relay_once(self) -> int:
        """Publish one batch of pending rows; return how many were published."""
        async with self._db.system_conn() as conn:
            rows = await conn.fetch(PENDING, self._batch_size)
        if not rows:
            return 0
        done: list[int] = []
        for row in rows:
            await self._publish(row)
            done.append(row["id"])
        async with self._db.system_conn() as conn:
            await conn.fetchval(MARK_PUBLISHED, done)
        self.published += len(done)
        return len(done)

    async def _publish(self, row: asyncpg.Record) -> None:
        tenant: str = row["tenant_id"]
        payload: dict[str, Any] = row["payload"]
        if row["subject_kind"] != WORKFLOW_CHANGED:
            log.error("outbox.unknown_kind", kind=row["subject_kind"], id=row["id"])
            return
        message = msgspec.convert(
            {**payload, "tenant": tenant, "outbox_id": row["id"]}, WorkflowChanged
        )
        await self._js.publish(
            self._subjects.workflow_changed(tenant),
            _encoder.encode(message),
            headers={headers.MSG_ID: f"outbox:{row['id']}"},
        )
