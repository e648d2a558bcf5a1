"""The events ingress's cost: a tenant's ``js.publish`` through it vs. straight into the stream.

A nats-server 2.15 runs the committed configuration (``deploy/nats``, copied) with a
publisher minted for tenant ``acme``, and one gateway in its own process
(``python -m flowmesh_gateway``, signed in as its user) as the ingress. For comparison,
the copy also holds what the configuration did before the ingress, for a tenant
``direct`` only: its account imports ``fm.direct.events.>`` straight from the stream's
account, so its publisher's events go into FM_EVENTS with JetStream's own acknowledgement.
This process is both publishers. Scenarios:

- ``sequential``: N publishes one after another (a new event id each), the latency of each
  from ``js.publish`` to its acknowledgement;
- ``retry``: the same, each event sent a second time (the ingress answers ``duplicate``
  from the event-ids ledger; JetStream without a ``Nats-Msg-Id`` stores it again);
- ``concurrent``: N publishes with 32 in flight (a tenant's bound on one gateway,
  ``FLOWMESH_GATEWAY_INGRESS_TENANT_MAX_IN_FLIGHT``); events per second, and how many
  were refused as busy (503) and sent again.

    uv run python bench/ingress.py --events 2000 --out bench/results/ingress.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.js.errors import ServiceUnavailableError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowmesh_proto.subjects import Subjects, stream_names  # noqa: E402
from flowmesh_shared.jetstream import StreamLimits, provision_streams  # noqa: E402
from tests.natsdeploy import (  # noqa: E402
    Deployed,
    account_passwords,
    copy_config,
    event_body,
    mint,
    single_node,
)

#: The path tenants' events took before the ingress, for the tenant ``direct`` only.
DIRECT_EXPORT = '      {service: "fm.direct.events.>"}\n'
DIRECT_ACCOUNT = """
TENANT_direct: {
  users: [{user: "direct", password: "direct", permissions: {
    publish: {allow: ["fm.direct.events.>"]}, subscribe: {allow: ["_INBOX.>"]}}}]
  imports: [{service: {account: FLOWMESH, subject: "fm.direct.events.>"}}]
}
"""


def with_direct_tenant(config: Path) -> None:
    accounts = config / "accounts.conf"
    text = accounts.read_text()
    marker = "    exports: [\n"
    accounts.write_text(text.replace(marker, marker + DIRECT_EXPORT, 1))
    with (config / "tenants.conf").open("a") as tenants:
        tenants.write(DIRECT_ACCOUNT)


def summary(latencies: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "mean_ms": round(statistics.fmean(ms), 3),
        "p50_ms": round(ms[len(ms) // 2], 3),
        "p95_ms": round(ms[int(len(ms) * 0.95)], 3),
        "p99_ms": round(ms[int(len(ms) * 0.99)], 3),
    }


async def sequential(nc: Any, tenant: str, n: int, *, retry: bool) -> dict[str, float]:
    js, latencies = nc.jetstream(), []
    for i in range(n):
        body = event_body(tenant, "bench.seq", f"{'r' if retry else 's'}-{i}-{time.time_ns()}")
        if retry:
            await js.publish(f"fm.{tenant}.events.bench.seq", body)
        started = time.perf_counter()
        await js.publish(f"fm.{tenant}.events.bench.seq", body)
        latencies.append(time.perf_counter() - started)
    return summary(latencies)


async def concurrent(nc: Any, tenant: str, n: int, in_flight: int = 32) -> dict[str, float]:
    js, gate, busy = nc.jetstream(), asyncio.Semaphore(in_flight), 0

    async def one(i: int) -> None:
        nonlocal busy
        async with gate:
            body = event_body(tenant, "bench.con", f"c-{i}-{time.time_ns()}")
            while True:
                try:
                    await js.publish(f"fm.{tenant}.events.bench.con", body, timeout=10)
                    return
                except ServiceUnavailableError:
                    busy += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return {"events_per_s": round(n / (time.perf_counter() - started), 1), "busy": busy}


async def gateway_process(deployed: Deployed) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "FLOWMESH_GATEWAY_NATS_URL": deployed.url("gateway"),
        "FLOWMESH_GATEWAY_HTTP_PORT": "0",
        "FLOWMESH_GATEWAY_LOG_LEVEL": "warning",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowmesh_gateway", env=env, start_new_session=True
    )


async def until_ingress_answers(nc: Any) -> None:
    for _ in range(300):
        try:
            await nc.jetstream().publish(
                "fm.acme.events.bench.up", event_body("acme", "bench.up", "up")
            )
            return
        except (nats.errors.Error, TimeoutError):
            await asyncio.sleep(0.1)
    raise RuntimeError("the gateway's ingress never answered")


async def main(events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = copy_config(Path(tmp))
        minted = await mint(config, "acme", "publisher")
        with_direct_tenant(config)
        async with single_node(config, account_passwords()) as node:
            deployed = Deployed(node, config, {})
            deployed.passwords = {
                k: v for k, v in node.env.items() if k.startswith("FM_NATS_") and "PASSWORD" in k
            }
            registry = await deployed.connect("registry")
            await provision_streams(
                registry.jetstream(), Subjects(), stream_names(), StreamLimits()
            )
            await registry.close()
            gateway = await gateway_process(deployed)
            try:
                acme = await nats.connect(node.url_for("acme-publisher", minted["password"]))
                direct = await nats.connect(node.url_for("direct", "direct"))
                await until_ingress_answers(acme)
                for nc, tenant in ((acme, "acme"), (direct, "direct")):  # warm up
                    await sequential(nc, tenant, 200, retry=False)
                result: dict[str, Any] = {"events": events}
                for name, nc, tenant in (("ingress", acme, "acme"), ("direct", direct, "direct")):
                    result[name] = {
                        "sequential": await sequential(nc, tenant, events, retry=False),
                        "retry": await sequential(nc, tenant, events, retry=True),
                        "concurrent": await concurrent(nc, tenant, events),
                    }
                await acme.close()
                await direct.close()
            finally:
                gateway.terminate()
                await gateway.wait()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started_at = datetime.now(UTC).isoformat()
    result = {
        "command": " ".join(["uv run python bench/ingress.py", *sys.argv[1:]]),
        "started_at": started_at,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "note": "nats-server, the gateway and this client share them",
        },
        "results": asyncio.run(main(args.events)),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
