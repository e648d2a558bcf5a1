"""Order pipeline: an ``http`` step retried while the payments service answers 503.

Starts a tiny payments service on a free local port that refuses the first
``UNAVAILABLE_FOR`` calls of each charge with 503, imports the workflow with its
``payments_url`` pointing there, runs one order and follows it: the ``charge`` step fails,
is retried with backoff, then succeeds, and the switch sends the order down one branch.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from flowmesh_examples import Flowmesh, say, workflow

UNAVAILABLE_FOR = 2  # calls per charge answered 503 before it goes through

ORDER = {"order_id": "A-1001", "customer": "Ada", "country": "FR", "total": 129.90}


class Payments:
    """A payments API: ``POST /charges``, idempotent by the ``Idempotency-Key`` header."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.charges: dict[str, dict[str, object]] = {}

    async def charge(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        body = await request.json()
        self.calls[key] = attempt = self.calls.get(key, 0) + 1
        if attempt <= UNAVAILABLE_FOR:
            say(f"  [payments] charge {body['order_id']} (call {attempt}): 503, warming up")
            return web.json_response({"error": "warming up, try again"}, status=503)
        if key not in self.charges:
            digest = hashlib.sha256(key.encode()).hexdigest()[:12]
            self.charges[key] = {
                "charge_id": f"ch_{digest}",
                "order_id": body["order_id"],
                "amount": body["amount"],
                "currency": body["currency"],
                "status": "captured",
            }
        charge = self.charges[key]
        say(f"  [payments] charge {body['order_id']} (call {attempt}): 201 {charge['charge_id']}")
        return web.json_response(charge, status=201)


@contextlib.asynccontextmanager
async def payments_service() -> AsyncIterator[str]:
    """The payments service on 127.0.0.1, while open; its base URL."""
    app = web.Application()
    app.router.add_post("/charges", Payments().charge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # a free port
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def main(flowmesh: Flowmesh, folder: Path) -> bool:
    async with payments_service() as payments_url:
        say(f"payments service (fails the first {UNAVAILABLE_FOR} calls) at {payments_url}")
        definition = workflow(folder / "workflow.yaml", payments_url=payments_url)
        installed = await flowmesh.install(definition)
        run_id = await flowmesh.execute(installed, ORDER)
        run = await flowmesh.follow(run_id)
    charge = next(step for step in run["steps"] if step["node_id"] == "charge")
    say(f"the charge step took {charge['attempts']} attempts")
    return bool(run["status"] == "succeeded" and charge["attempts"] == UNAVAILABLE_FOR + 1)
