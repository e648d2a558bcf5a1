"""Event-driven fan-out: an event trigger with a CEL filter, and a ``map`` over its items.

Imports the workflow, listens to the tenant's run events (``GET /events/stream``), then
publishes two ``warehouse.batch_ready`` events through ``POST /events``: Hamburg's, which
the trigger's filter refuses, and Berlin's, which starts a run that labels each parcel.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from flowmesh_examples import Flowmesh, say, workflow

EVENT = "warehouse.batch_ready"
BERLIN = {
    "warehouse": "berlin",
    "batch": "B-0612",
    "parcels": [
        {"id": "P-100", "weight_kg": 1.2},
        {"id": "P-101", "weight_kg": 24.0},
        {"id": "P-102", "weight_kg": 3.5},
        {"id": "P-103", "weight_kg": 0.4},
        {"id": "P-104", "weight_kg": 31.0},
    ],
}
HAMBURG = {"warehouse": "hamburg", "batch": "H-0077", "parcels": [{"id": "P-900", "weight_kg": 2}]}


async def main(flowmesh: Flowmesh, folder: Path) -> bool:
    installed = await flowmesh.install(workflow(folder / "workflow.yaml"))
    for trigger in installed["triggers"]:
        say(f"trigger {trigger['id']!r}: event {trigger['event']} if {trigger['filter']}")
    # A workflow's triggers are live within a second of the answer that stored them.
    await asyncio.sleep(1)
    async with flowmesh.new_runs(installed) as runs:
        await flowmesh.publish(EVENT, HAMBURG)  # the filter says no: no run
        await flowmesh.publish(EVENT, BERLIN)
        run_id = await runs.next(within=15, waiting_for=f"the Berlin {EVENT} event")
        say(f"the Berlin event started run {run_id}")
        run = await flowmesh.follow(run_id)
    trigger = run["trigger"]
    warehouse = trigger["data"]["warehouse"]
    say(f"the run's trigger: {trigger['kind']} {trigger['trigger_id']!r}, warehouse {warehouse}")
    labelled = run["output"]["parcels"] if run["status"] == "succeeded" else 0
    return bool(warehouse == "berlin" and labelled == len(BERLIN["parcels"]))
