"""Task step: the workflow's ``invoice`` step is done by a Python worker (``worker.py``).

Starts ``worker.py`` as a process of its own (as you would run it next to your other
services) with the stack's NATS URL and tenant, waits until it serves its queue, runs one
order through the workflow, then stops the worker. The worker's lines are shown as
``[worker] ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from flowmesh_examples import ExampleError, Flowmesh, say, workflow

ORDER = {
    "order_id": "A-1002",
    "customer": {"name": "Grace", "email": "grace@example.com"},
    "items": [
        {"sku": "KB-01", "qty": 2, "unit_price": 49.90},
        {"sku": "BOOK-7", "qty": 3, "unit_price": 18.00, "vat": "reduced"},
        {"sku": "CABLE-3", "qty": 5, "unit_price": 4.99},
    ],
}


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace").rstrip()


async def _forward(lines: asyncio.StreamReader) -> None:
    async for raw in lines:
        say(f"  [worker] {_text(raw)}")


async def _until_ready(lines: asyncio.StreamReader, within: float = 30) -> None:
    """Show the worker's lines until it says it is ready; ExampleError if it never does."""
    said: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            async for raw in lines:
                said.append(_text(raw))
                say(f"  [worker] {said[-1]}")
                if said[-1].startswith("worker ready"):
                    return
    raise ExampleError(f"the worker did not start within {within:g} s: {' | '.join(said)}")


@contextlib.asynccontextmanager
async def worker_process(script: Path, flowmesh: Flowmesh) -> AsyncIterator[None]:
    """``script`` running and serving its queue while open; stopped with SIGTERM after."""
    env = {
        **os.environ,
        "NATS_URL": flowmesh.stack.nats_url,
        "FLOWMESH_TENANT": flowmesh.stack.tenant,
        "PYTHONUNBUFFERED": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        await _until_ready(process.stdout)
        forwarding = asyncio.create_task(_forward(process.stdout))
        yield
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
        await forwarding
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def main(flowmesh: Flowmesh, folder: Path) -> bool:
    installed = await flowmesh.install(workflow(folder / "workflow.yaml"))
    async with worker_process(folder / "worker.py", flowmesh):
        run_id = await flowmesh.execute(installed, ORDER)
        run = await flowmesh.follow(run_id)
    invoice = next(step for step in run["steps"] if step["node_id"] == "invoice")
    number = (invoice.get("output") or {}).get("number", "")
    return bool(run["status"] == "succeeded" and number.startswith("INV-"))
