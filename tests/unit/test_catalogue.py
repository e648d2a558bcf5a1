"""The trigger catalogue (pure): what it arms, and what it leaves out for its caller to log."""

from __future__ import annotations

from datetime import UTC, datetime

from flowmesh_proto.registry import CatalogueEntry, WorkflowChanged
from flowmesh_scheduler.catalogue import Catalogue, Refused


def entry(triggers: list[dict[str, object]]) -> CatalogueEntry:
    return CatalogueEntry(
        tenant="acme",
        workflow_id="w1",
        version=3,
        enabled=True,
        valid=True,
        triggers=triggers,
    )


def test_a_trigger_that_cannot_be_armed_is_returned_not_logged() -> None:
    catalogue = Catalogue()
    refused = catalogue.load(
        [
            entry(
                [
                    {"id": "nightly", "kind": "cron", "cron": "0 3 * * *"},
                    {"id": "bad", "kind": "cron", "cron": "0 3 * * *", "timezone": "Mars/Olympus"},
                    {"kind": "nonsense"},
                ]
            )
        ]
    )
    assert [armed.trigger_id for armed in catalogue.crons()] == ["nightly"]
    assert [(r.kind, r.trigger) for r in refused] == [("unreadable", None), ("refused", "bad")]
    assert all(isinstance(r, Refused) and r.workflow_id == "w1" for r in refused)


def test_a_change_reports_what_it_refused() -> None:
    catalogue = Catalogue()
    change = WorkflowChanged(
        tenant="acme",
        workflow_id="w1",
        version=4,
        change="updated",
        enabled=True,
        triggers=[{"id": "bad", "kind": "cron", "cron": "0 3 * * *", "timezone": "Nowhere/Land"}],
        outbox_id=1,
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert [r.trigger for r in catalogue.apply(change)] == ["bad"]
    assert list(catalogue.crons()) == []
