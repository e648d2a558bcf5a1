"""An HTTP server on loopback that ``http`` steps call: it counts each step's requests by
their ``Idempotency-Key`` (``<run_id>:<node_id>``), can hold requests until released, and
can take its time answering.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from flowmesh_devtools.localstack import LOOPBACK, free_port


@dataclass(slots=True)
class Gate:
    """Holds the requests of one node: only the first one (``first_only``), only the ones
    after it (``repeats_only``), or all of them."""

    first_only: bool
    repeats_only: bool = False
    open: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Origin:
    base: str
    #: Requests received, by idempotency key (counted on arrival).
    received: Counter[str] = field(default_factory=Counter)
    #: Requests answered, by idempotency key.
    answered: Counter[str] = field(default_factory=Counter)
    gates: dict[str, Gate] = field(default_factory=dict)
    #: Seconds each request of a node takes to answer (after its gate opens).
    delays: dict[str, float] = field(default_factory=dict)

    def step(self, node_id: str) -> dict[str, Any]:
        """An ``http`` node that calls this server."""
        return {
            "id": node_id,
            "type": "http",
            "parameters": {"url": f"{self.base}/steps/{node_id}", "method": "POST"},
        }

    def chain(self, *node_ids: str) -> dict[str, Any]:
        """A workflow definition: the nodes as ``http`` steps, one after the other."""
        pairs = itertools.pairwise(node_ids)
        return {
            "name": "fault-chain",
            "nodes": [self.step(node_id) for node_id in node_ids],
            "edges": [{"from": a, "to": b} for a, b in pairs],
        }

    def hold(
        self, node_id: str, *, first_only: bool = False, repeats_only: bool = False
    ) -> asyncio.Event:
        """Hold ``node_id``'s requests (every run's) until the returned event is set."""
        gate = self.gates[node_id] = Gate(first_only=first_only, repeats_only=repeats_only)
        return gate.open

    def delay(self, node_id: str, seconds: float) -> None:
        """Answer each of ``node_id``'s requests ``seconds`` after it arrived (or its gate
        opened)."""
        self.delays[node_id] = seconds

    def counts(self, run_id: str, *node_ids: str) -> dict[str, int]:
        """How many requests each node of ``run_id`` sent."""
        return {node_id: self.received[f"{run_id}:{node_id}"] for node_id in node_ids}

    def release_all(self) -> None:
        for gate in self.gates.values():
            gate.open.set()

    async def _handle(self, request: web.Request) -> web.Response:
        node_id = request.match_info["node"]
        key = request.headers.get("Idempotency-Key", "")
        self.received[key] += 1
        gate, nth = self.gates.get(node_id), self.received[key]
        if gate is not None:
            held = nth == 1 if gate.first_only else nth > 1 if gate.repeats_only else True
            if held:
                await gate.open.wait()
        if node_id in self.delays:
            await asyncio.sleep(self.delays[node_id])
        self.answered[key] += 1
        return web.json_response({"node": node_id, "request": self.received[key]})


@asynccontextmanager
async def serve_origin() -> AsyncIterator[Origin]:
    port = free_port()
    origin = Origin(base=f"http://{LOOPBACK}:{port}")
    app = web.Application()
    app.router.add_post("/steps/{node}", origin._handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, LOOPBACK, port).start()
        yield origin
    finally:
        origin.release_all()
        await runner.cleanup()
