"""``client.runs``: the runs tag (list, read, cancel, retry, follow the events live)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import datetime

from flowmesh_client.follow import Delivery, StreamItem, StreamPolicy, ends_run, follow
from flowmesh_client.paging import every
from flowmesh_client.transport import Transport, decode
from flowmesh_proto.http import CancelAccepted, RunAccepted
from flowmesh_proto.registry import RunPage
from flowmesh_proto.runs import Run, RunEvent, StepBatch, StepLog


class Runs:
    """Calls of the runs tag, for one tenant."""

    def __init__(self, transport: Transport, policy: StreamPolicy) -> None:
        self._t = transport
        self.policy = policy

    def _path(self, *parts: str) -> str:
        return self._t.target.path("runs", *parts)

    async def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        workflow_id: str | None = None,
        status: Sequence[str] | None = None,
        trigger_kind: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> RunPage:
        """``GET /runs``: one page, newest first, without steps."""
        query = {
            "limit": limit,
            "cursor": cursor,
            "workflow_id": workflow_id,
            "status": ",".join(status) if status else None,
            "trigger_kind": trigger_kind,
            "created_after": created_after.isoformat() if created_after else None,
            "created_before": created_before.isoformat() if created_before else None,
        }
        return decode(await self._t.request("GET", self._path(), query=query), RunPage)

    async def iter(
        self,
        *,
        limit: int | None = None,
        workflow_id: str | None = None,
        status: Sequence[str] | None = None,
        trigger_kind: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> AsyncIterator[Run]:
        """Every run (``list``'s filters; ``limit``: per page), newest first, page after page."""
        async for item in every(
            lambda cursor: self.list(
                cursor=cursor,
                limit=limit,
                workflow_id=workflow_id,
                status=status,
                trigger_kind=trigger_kind,
                created_after=created_after,
                created_before=created_before,
            )
        ):
            yield item

    async def get(self, run_id: str) -> Run:
        """``GET /runs/{run_id}``: the run with its steps."""
        return decode(await self._t.request("GET", self._path(run_id)), Run)

    async def cancel(self, run_id: str, reason: str = "") -> CancelAccepted:
        """``POST /runs/{run_id}/cancel`` (202)."""
        body = {"reason": reason} if reason else None
        answer = await self._t.request("POST", self._path(run_id, "cancel"), json=body)
        return decode(answer, CancelAccepted)

    async def retry(self, run_id: str) -> RunAccepted:
        """``POST /runs/{run_id}/retry`` (202): a new run."""
        return decode(await self._t.request("POST", self._path(run_id, "retry")), RunAccepted)

    def stream(
        self, run_id: str, *, last_event_id: str = "", policy: StreamPolicy | None = None
    ) -> AsyncGenerator[StreamItem, None]:
        """``GET /runs/{run_id}/events`` as items: events, reconnects, unreadable events."""
        return follow(
            self._t,
            self._path(run_id, "events"),
            policy or self.policy,
            last_event_id=last_event_id,
            until=ends_run,
            what=f"run {run_id}",
        )

    async def follow(self, run_id: str, *, last_event_id: str = "") -> AsyncIterator[RunEvent]:
        """The run's events from its first (or after ``last_event_id``) to its terminal one,
        live, through dropped connections (resumed with ``Last-Event-ID``)."""
        items = self.stream(run_id, last_event_id=last_event_id)
        async with contextlib.aclosing(items):
            async for item in items:
                if isinstance(item, Delivery):
                    yield item.event

    async def logs(self, run_id: str) -> AsyncIterator[StepLog]:
        """The run's log lines (``step.log`` events), to its end."""
        async for event in self.follow(run_id):
            inner = event.events if isinstance(event, StepBatch) else [event]
            for each in inner:
                if isinstance(each, StepLog):
                    yield each
