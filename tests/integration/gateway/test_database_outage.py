"""PostgreSQL restarting under a real registry and gateway: every request answers 503
UNAVAILABLE, never 500, and the service recovers by itself.

The registry reaches PostgreSQL through a small TCP relay the test controls. A restart is
played as PostgreSQL plays it: the backends are terminated (``pg_terminate_backend`` from
another connection), then new connections are refused with ``57P03 the database system is
starting up`` (asyncpg's ``CannotConnectNowError``, the 500 measured on a ``make dev``
stack), then the port is closed (``OSError``), then it is open again.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import msgspec
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats

from flowmesh_proto.subjects import Subjects
from flowmesh_registry.main import start_registry
from flowmesh_registry.settings import RegistrySettings
from flowmesh_shared.rpc import RpcClient
from tests.helpers import until
from tests.integration.harness import Registry, new_tenant, unique

from .conftest import Client, Http, Keys, _delete_streams, gateway_settings, started

pytestmark = pytest.mark.integration

Mode = Literal["forward", "starting", "closed"]
_SSL_REQUEST = struct.pack("!I", 80877103)


def _starting_up() -> bytes:
    """PostgreSQL's answer to a connection while it starts: a FATAL ErrorResponse."""
    fields = b"SFATAL\x00VFATAL\x00C57P03\x00Mthe database system is starting up\x00\x00"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


class Relay:
    """A TCP relay to PostgreSQL that forwards, answers "starting up", or is closed."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.mode: Mode = "forward"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self.mode == "starting":
                first = await reader.read(8192)
                if first[4:8] == _SSL_REQUEST:  # no TLS here, as a plain server says
                    writer.write(b"N")
                    await writer.drain()
                    await reader.read(8192)  # the startup message
                writer.write(_starting_up())
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._writers.add(up_writer)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except OSError:
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest_asyncio.fixture(loop_scope="session")
async def outage(
    registry_settings: RegistrySettings, jwt_keys: tuple[Keys, list[str]], nc: Nats
) -> AsyncIterator[tuple[Client, Relay, str]]:
    """A registry (its own database, reached through a relay) and a gateway before it."""
    keys, files = jwt_keys
    prefix = f"fmo{secrets.token_hex(4)}"
    parts = urlsplit(registry_settings.database_url)
    database = f"{parts.path.lstrip('/')}_{prefix}"
    server = await asyncpg.connect(registry_settings.database_url)
    try:
        await server.execute(f'CREATE DATABASE "{database}"')
    finally:
        await server.close()
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.open()
    userinfo = parts.netloc.rpartition("@")[0]
    via_relay = parts._replace(
        netloc=f"{userinfo}@127.0.0.1:{relay.port}" if userinfo else f"127.0.0.1:{relay.port}",
        path=f"/{database}",
    )
    settings = msgspec.structs.replace(
        registry_settings,
        database_url=urlunsplit(via_relay),
        subject_prefix=prefix,
        stream_prefix=prefix.upper(),
    )
    try:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(relay.close)
            stack.push_async_callback(_delete_streams, nc, settings.stream_prefix)
            app = await start_registry(settings, stack)
            own = Registry(app, RpcClient(nc, Subjects(prefix), timeout=5.0), settings)
            gateway = await started(gateway_settings(own, files, rpc_timeout=10.0), stack)
            session = await stack.enter_async_context(aiohttp.ClientSession())
            http = Http(session, f"http://127.0.0.1:{gateway.port}", keys)
            yield Client(http, await new_tenant(own, "o")), relay, database
    finally:
        server = await asyncpg.connect(registry_settings.database_url)
        try:
            await server.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await server.close()


async def _terminate_backends(url: str, database: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        ended: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
            database,
        )
    finally:
        await conn.close()
    return ended


async def test_a_restart_answers_503_never_500(
    outage: tuple[Client, Relay, str], registry_settings: RegistrySettings
) -> None:
    client, relay, database = outage
    workflow = await client.create(unique("outage"))
    path = f"/workflows/{workflow['id']}"

    async def statuses(n: int) -> list[tuple[int, Any]]:
        found = []
        for _ in range(n):
            status, body, _ = await client("GET", path)
            found.append((status, body.get("code") if isinstance(body, dict) else body))
        return found

    relay.mode = "starting"
    assert await _terminate_backends(registry_settings.database_url, database) > 0
    seen = await statuses(5)
    assert seen == [(503, "UNAVAILABLE")] * 5, seen
    status, body, _ = await client("POST", "/workflows", json={"name": "x"})
    assert status in (422, 503), body  # judged without the database, or 503; never 500

    await relay.close()  # the port is closed: connecting is an OSError
    relay.mode = "closed"
    seen = await statuses(3)
    assert seen == [(503, "UNAVAILABLE")] * 3, seen

    relay.mode = "forward"
    await relay.open()

    async def recovered() -> bool:
        status, _, _ = await client("GET", path)
        return status == 200

    await until(recovered, timeout=10)
