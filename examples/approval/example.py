"""Approval: a ``wait_for_event`` step, answered by publishing the decision event.

Starts two expense runs and follows each; when its ``decision`` step starts waiting, the
manager's answer is published through ``POST /events`` (after a short pause, as a person
would take): the first expense is approved and paid, the second rejected and returned.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from flowmesh_examples import Flowmesh, say, workflow

THINKING = 1.5  # seconds the "manager" takes to answer

EXPENSES = [
    ({"expense_id": "EXP-2001", "employee": "Ada", "amount": 84.5, "reason": "train"}, True),
    ({"expense_id": "EXP-2002", "employee": "Alan", "amount": 2400.0, "reason": "chair"}, False),
]


async def decide(flowmesh: Flowmesh, expense_id: str, approved: bool) -> None:
    say(f"  ... the run waits for expense.decided about {expense_id}; the manager answers")
    await asyncio.sleep(THINKING)
    decision = {"expense_id": expense_id, "approved": approved, "by": "maria"}
    await flowmesh.publish("expense.decided", decision)


async def one(flowmesh: Flowmesh, installed: Any, expense: Any, approve: bool) -> bool:
    run_id = await flowmesh.execute(installed, expense)
    run = await flowmesh.follow(
        run_id, when_running={"decision": lambda: decide(flowmesh, expense["expense_id"], approve)}
    )
    expected = "paid" if approve else "returned"
    return bool(run["status"] == "succeeded" and run["output"]["result"] == expected)


async def main(flowmesh: Flowmesh, folder: Path) -> bool:
    installed = await flowmesh.install(workflow(folder / "workflow.yaml"))
    results = [await one(flowmesh, installed, expense, approve) for expense, approve in EXPENSES]
    return all(results)
