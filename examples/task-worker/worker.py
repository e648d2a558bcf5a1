"""The invoicing worker: serves the ``invoicing`` task queue with the flowmesh-worker SDK.

    NATS_URL=nats://127.0.0.1:4222 FLOWMESH_TENANT=demo uv run python examples/task-worker/worker.py

``examples/run.py task-worker`` starts it with the stack's NATS URL (``nats_url`` of
``$FLOWMESH_HOME/dev.json``) and stops it at the end. Run as many as you like: they share
the queue's durable consumer, so each task goes to one of them. SIGINT or SIGTERM stops
it gracefully (running tasks finish, up to the SDK's ``stop_grace``).

The work itself is plain Python, the kind of thing a workflow expression cannot do: exact
decimal arithmetic per VAT rate, rounding, and a stable invoice number per step (from the
task's idempotency key, the same on every redelivery, so a retried step gets the same
invoice number).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flowmesh_worker import TaskContext, Worker

QUEUE = "invoicing"
VAT = {"standard": Decimal("0.19"), "reduced": Decimal("0.07")}
CENT = Decimal("0.01")


def make_invoice(order: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    """The invoice of ``order``: lines, net, VAT and total (amounts as exact text)."""
    lines, net, vat = [], Decimal(0), Decimal(0)
    for item in order["items"]:
        amount = (Decimal(str(item["unit_price"])) * int(item["qty"])).quantize(CENT)
        rate = VAT[item.get("vat", "standard")]
        tax = (amount * rate).quantize(CENT, ROUND_HALF_UP)
        lines.append({"sku": item["sku"], "qty": item["qty"], "net": str(amount), "vat": str(tax)})
        net, vat = net + amount, vat + tax
    total = net + vat
    number = "INV-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:8].upper()
    return {
        "number": number,
        "order_id": order["order_id"],
        "lines": lines,
        "net": str(net),
        "vat": str(vat),
        "total": str(total),
        "total_cents": int(total * 100),
    }


async def main() -> None:
    url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    tenant = os.environ.get("FLOWMESH_TENANT", "demo")
    worker = await Worker.connect(url, tenant=tenant, name="invoicing-worker")

    @worker.task(QUEUE)
    async def invoice(order: Any, task: TaskContext) -> Any:
        print(
            f"invoicing order {order['order_id']} (run {task.run_id}, attempt {task.attempt})",
            flush=True,
        )
        result = make_invoice(order, task.idempotency_key)
        print(f"invoice {result['number']}: net {result['net']} + VAT {result['vat']}")
        return result

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        print(f"worker ready: serving queue {QUEUE!r} of tenant {tenant!r} at {url}")
        await stop.wait()
    print("worker stopped")


if __name__ == "__main__":
    asyncio.run(main())
