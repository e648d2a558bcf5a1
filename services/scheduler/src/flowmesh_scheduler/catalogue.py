"""The trigger catalogue: every tenant's live triggers, as the scheduler fires them. Pure.

It is filled by a full reload at start (the registry's ``trigger_catalogue`` operation) and
kept current by ``workflow.changed`` events; the scheduler never reads PostgreSQL. An
entry is the workflow's current version: its triggers fire only while the workflow is
enabled and the version valid, and each trigger only while its own ``enabled`` is true.
Each change bumps :attr:`Catalogue.generation`, which the cron loop watches. A trigger
that cannot be armed (stored before a rule tightened) is left out and returned as a
:class:`Refused`, for the caller to log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import msgspec

from flowmesh_proto.catalog import TRIGGER_KINDS, trigger_kind
from flowmesh_proto.registry import CatalogueEntry, WorkflowChanged
from flowmesh_proto.workflow import CronTrigger, EventTrigger, Trigger
from flowmesh_scheduler.cron import CronSpec
from flowmesh_scheduler.matching import EventFilter


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """A stored trigger left unarmed: ``unreadable`` (not a trigger any more) or
    ``refused`` (its cron, time zone or filter no longer accepted)."""

    kind: Literal["unreadable", "refused"]
    tenant: str
    workflow_id: str
    trigger: str | None
    error: str


class Armed(msgspec.Struct, frozen=True, kw_only=True):
    """A trigger that may fire: its workflow's identity and the version a fire runs."""

    tenant: str
    workflow_id: str
    version: int
    trigger_id: str

    @property
    def key(self) -> str:
        """The trigger's name across versions (``<tenant>.<workflow_id>.<trigger_id>``)."""
        return f"{self.tenant}.{self.workflow_id}.{self.trigger_id}"


class ArmedCron(Armed, frozen=True, kw_only=True):
    spec: CronSpec
    catch_up: str


class ArmedEvent(Armed, frozen=True, kw_only=True):
    event: str
    filter: EventFilter | None


class _Workflow(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    live: bool
    crons: tuple[ArmedCron, ...]
    events: tuple[ArmedEvent, ...]


class Catalogue:
    def __init__(self) -> None:
        self._workflows: dict[tuple[str, str], _Workflow] = {}
        self._events: dict[tuple[str, str], list[ArmedEvent]] = defaultdict(list)
        self.generation = 0

    def __len__(self) -> int:
        return len(self._workflows)

    # --- changes ---

    def load(self, entries: Iterable[CatalogueEntry]) -> list[Refused]:
        """Replace everything with a full reload's entries."""
        self._workflows.clear()
        refused: list[Refused] = []
        for entry in entries:
            refused += self._put(
                entry.tenant,
                entry.workflow_id,
                entry.version,
                entry.enabled and entry.valid,
                entry.triggers,
            )
        self._reindex()
        return refused

    def apply(self, change: WorkflowChanged) -> list[Refused]:
        """One ``workflow.changed`` event (a stored version is valid when it is stored)."""
        key = (change.tenant, change.workflow_id)
        refused: list[Refused] = []
        if change.change == "deleted":
            self._workflows.pop(key, None)
        else:
            refused = self._put(
                change.tenant, change.workflow_id, change.version, change.enabled, change.triggers
            )
        self._reindex()
        return refused

    def _put(
        self, tenant: str, workflow_id: str, version: int, live: bool, raw: list[dict[str, Any]]
    ) -> list[Refused]:
        crons: list[ArmedCron] = []
        events: list[ArmedEvent] = []
        triggers, refused = _triggers(tenant, workflow_id, raw)
        for trigger in triggers:
            if not trigger.enabled:
                continue
            try:
                if isinstance(trigger, CronTrigger):
                    crons.append(
                        ArmedCron(
                            tenant=tenant,
                            workflow_id=workflow_id,
                            version=version,
                            trigger_id=trigger.id,
                            spec=CronSpec(trigger.cron, trigger.timezone),
                            catch_up=trigger.catch_up,
                        )
                    )
                elif isinstance(trigger, EventTrigger):
                    events.append(
                        ArmedEvent(
                            tenant=tenant,
                            workflow_id=workflow_id,
                            version=version,
                            trigger_id=trigger.id,
                            event=trigger.event,
                            filter=EventFilter(trigger.filter) if trigger.filter else None,
                        )
                    )
            except (ValueError, LookupError) as exc:  # stored before a rule tightened
                refused.append(
                    Refused(
                        kind="refused",
                        tenant=tenant,
                        workflow_id=workflow_id,
                        trigger=trigger.id,
                        error=str(exc),
                    )
                )
        self._workflows[(tenant, workflow_id)] = _Workflow(
            version=version, live=live, crons=tuple(crons), events=tuple(events)
        )
        return refused

    def _reindex(self) -> None:
        self._events = defaultdict(list)
        for workflow in self._workflows.values():
            if workflow.live:
                for armed in workflow.events:
                    self._events[(armed.tenant, armed.event)].append(armed)
        self.generation += 1

    # --- reading ---

    def crons(self) -> Iterator[ArmedCron]:
        """Every cron trigger that may fire now."""
        for workflow in self._workflows.values():
            if workflow.live:
                yield from workflow.crons

    def event_triggers(self, tenant: str, event_type: str) -> list[ArmedEvent]:
        """The tenant's event triggers on ``event_type`` that may fire now."""
        return self._events.get((tenant, event_type), [])


def _triggers(
    tenant: str, workflow_id: str, raw: list[dict[str, Any]]
) -> tuple[list[Trigger], list[Refused]]:
    triggers: list[Trigger] = []
    refused: list[Refused] = []
    for item in raw:
        try:
            trigger: Trigger = msgspec.convert(item, Trigger)
        except msgspec.ValidationError as exc:
            refused.append(
                Refused(
                    kind="unreadable",
                    tenant=tenant,
                    workflow_id=workflow_id,
                    trigger=None,
                    error=str(exc),
                )
            )
            continue
        if TRIGGER_KINDS[trigger_kind(trigger)].armed_by == "scheduler":  # not webhooks
            triggers.append(trigger)
    return triggers, refused
