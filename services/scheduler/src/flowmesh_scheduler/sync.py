"""Keeping the trigger catalogue current without reading PostgreSQL.

At start the scheduler subscribes to every tenant's ``workflow.changed`` events (an
ordered consumer on FM_REGISTRY from now on), then reloads the whole catalogue from the
registry (``trigger_catalogue``, paged). Changes that arrive while a reload is under way
are held and applied after it, in order, so a change never loses to the older state a
reload read; applying one twice changes nothing. The registry's outbox publishes every
change, so events alone keep the catalogue current; a full reload every
``reload_interval`` seconds is the safety net (and what brings a replica back after a long
NATS outage). Until the first reload succeeds the scheduler fires nothing, takes no trigger
event (an event taken then would match nothing and be lost), and ``/readyz`` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy

from flowmesh_proto.registry import CatalogueEntry, TriggerCatalogue, WorkflowChanged
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_scheduler.catalogue import Catalogue, Refused
from flowmesh_scheduler.metrics import SchedulerMetrics
from flowmesh_shared.rpc import RpcClient

log = structlog.get_logger("flowmesh.scheduler.sync")

PRINCIPAL = "service:scheduler"
PAGE = 500
_change_decoder = msgspec.json.Decoder(WorkflowChanged)


class CatalogueSync:
    def __init__(
        self,
        nc: Client,
        rpc: RpcClient,
        subjects: Subjects,
        streams: StreamNames,
        catalogue: Catalogue,
        metrics: SchedulerMetrics,
        *,
        on_change: Callable[[], None],
        reload_interval: float,
    ) -> None:
        self.nc, self.rpc, self.subjects, self.streams = nc, rpc, subjects, streams
        self.catalogue, self.metrics = catalogue, metrics
        self.on_change, self.reload_interval = on_change, reload_interval
        self.loaded = False
        #: Set once the first reload has succeeded (event triggers wait for it).
        self.ready = asyncio.Event()
        self._held: list[WorkflowChanged] | None = []
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await self.nc.jetstream().subscribe(
            self.subjects.all_workflow_changes,
            stream=self.streams.registry,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            cb=self._on_msg,
        )
        self._task = asyncio.create_task(self._reloads(), name="scheduler.catalogue")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        try:
            change = _change_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("catalogue.change_unreadable", subject=msg.subject, error=str(exc))
            return
        if self._held is not None:
            self._held.append(change)
            return
        _log_refused(self.catalogue.apply(change))
        self._changed()

    async def _reloads(self) -> None:
        delay = 0.2
        while True:
            try:
                await self.reload()
                delay = 0.2
                await asyncio.sleep(self.reload_interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the registry not up yet, NATS down: try again
                log.warning("catalogue.reload_failed", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def reload(self) -> None:
        """Read the whole catalogue, then apply the changes that came meanwhile."""
        if self._held is None:
            self._held = []
        try:
            entries = await self._read_all()
        except BaseException:
            if self.loaded:  # keep serving the catalogue we have; apply what was held
                self._release()
            raise
        _log_refused(self.catalogue.load(entries))
        self._release()
        if not self.loaded:
            log.info("catalogue.loaded", workflows=len(self.catalogue))
        self.loaded = True
        self.ready.set()

    def _release(self) -> None:
        held, self._held = self._held or [], None
        for change in held:
            _log_refused(self.catalogue.apply(change))
        self._changed()

    def _changed(self) -> None:
        self.metrics.workflows.set(len(self.catalogue))
        self.on_change()

    async def _read_all(self) -> list[CatalogueEntry]:
        entries: list[CatalogueEntry] = []
        after: tuple[str, str] | None = None
        while True:
            request = TriggerCatalogue(
                after_tenant=after[0] if after else None,
                after_workflow_id=after[1] if after else None,
                limit=PAGE,
            )
            page = await self.rpc.call(request, principal=PRINCIPAL)
            entries += page.items
            if not page.has_more or not page.items:
                return entries
            after = (page.items[-1].tenant, page.items[-1].workflow_id)


def _log_refused(refused: list[Refused]) -> None:
    """The triggers the catalogue left unarmed (stored before a rule tightened)."""
    for item in refused:
        log.warning(
            f"catalogue.trigger_{item.kind}",
            tenant=item.tenant,
            workflow_id=item.workflow_id,
            trigger=item.trigger,
            error=item.error,
        )
