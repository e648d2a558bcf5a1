"""What an action costs on top of the http step it expands into, per step.

One executor's step functions are called in this process, alternately and many times,
against a loopback server speaking Slack's ``chat.postMessage``: an ``http`` node through a
bearer connector sending the same request by hand, and a ``slack.post_message`` action
node (input checked against its schema, the request rendered from it, the answer read by
the action's result expressions). Wall time and CPU time per step are measured around the
step call alone; the server runs in the same loop, so its share is in both equally.

    uv run python bench/actions.py --steps 3000 --out bench/results/actions.json
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from workload import write_results

from flowmesh_executor.nodes import action, http
from flowmesh_executor.nodes.base import StepCall, StepServices
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto.action_library import builtin_action
from flowmesh_proto.connector_rules import connector_hosts
from flowmesh_proto.connectors import Connector, ConnectorSpec
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_proto.workflow import ActionNode, ActionParameters, HttpNode, HttpParameters

TOKEN = "xoxb-bench-token-value"
NOW = datetime(2026, 12, 6, tzinfo=UTC)
INPUT = {"channel": "C0123456789", "text": "Order 42 shipped", "thread_ts": "1.2"}


async def _serve() -> tuple[web.AppRunner, str]:
    async def post(request: web.Request) -> web.Response:
        body = await request.json()
        answer = {"ok": True, "channel": body["channel"], "ts": "1733450000.000100"}
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/api/chat.postMessage", post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def _connector(base: str) -> Connector:
    spec = msgspec.convert(
        {"base_url": f"{base}/api", "auth": {"kind": "bearer", "secret": "TOKEN"}}, ConnectorSpec
    )
    return Connector(
        name="slack",
        base_url=spec.base_url,
        hosts=connector_hosts(spec),
        headers=spec.headers,
        auth=spec.auth,
        missing_secrets=[],
        version=1,
        created_at=NOW,
        created_by="bench",
        updated_at=NOW,
        updated_by="bench",
    )


def _call(node: HttpNode | ActionNode, connector: Connector) -> StepCall:
    slack = builtin_action("slack.post_message")
    assert slack is not None
    return StepCall(
        tenant="bench",
        run_id="run-1",
        workflow_id="wf-1",
        version=1,
        node=node,
        attempt=1,
        idempotency_key="run-1:post",
        parameters=msgspec.to_builtins(node.parameters),
        variables={},
        started_at=NOW,
        deadline=None,
        secrets={"TOKEN": TOKEN},
        connectors={"slack": connector},
        actions={("slack.post_message", None): slack},
    )


def _nodes() -> tuple[HttpNode, ActionNode]:
    by_hand = HttpParameters(
        connector="slack",
        path="/chat.postMessage",
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8"},
        body=INPUT,
        expect_status=[200],
    )
    as_action = ActionParameters(action="slack.post_message", connector="slack", input=INPUT)
    return HttpNode(id="post", parameters=by_hand), ActionNode(id="post", parameters=as_action)


async def _time(step: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await step()
    return time.perf_counter() - wall, time.process_time() - cpu


def _summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    walls = sorted(w * 1e6 for w, _ in samples)
    cpus = [c * 1e6 for _, c in samples]
    return {
        "p50_us": round(statistics.median(walls), 1),
        "p90_us": round(walls[int(len(walls) * 0.9)], 1),
        "p99_us": round(walls[int(len(walls) * 0.99)], 1),
        "cpu_mean_us": round(statistics.fmean(cpus), 1),
    }


async def main(steps: int, out: Path | None) -> None:
    started = datetime.now(UTC)
    runner, base = await _serve()
    settings = ExecutorSettings(http_allow_private=True)
    session = http.http_session(settings)
    unused: Any = None
    services = StepServices(
        nc=unused,
        js=unused,
        subjects=Subjects(),
        streams=stream_names(),
        settings=settings,
        http=session,
        waits=unused,
        children=unused,
        definitions=unused,
        event_ids=unused,
    )
    connector = _connector(base)
    http_node, action_node = _nodes()
    calls = {
        "http": (http.run, _call(http_node, connector)),
        "action": (action.run, _call(action_node, connector)),
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    try:
        for run, call in calls.values():  # warm up: connections, compiled schema
            for _ in range(50):
                await run(call, services)
        for _ in range(steps):
            for name, (run, call) in calls.items():
                samples[name].append(await _time(lambda r=run, c=call: r(c, services)))
    finally:
        await session.close()
        await runner.cleanup()
    results: dict[str, Any] = {name: _summary(found) for name, found in samples.items()}
    results["action_minus_http"] = {
        key: round(results["action"][key] - results["http"][key], 1)
        for key in ("p50_us", "cpu_mean_us")
    }
    write_results("actions.py", started, results, out, steps_each=steps)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    asyncio.run(main(args.steps, args.out))
