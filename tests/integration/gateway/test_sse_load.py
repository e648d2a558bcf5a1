"""SSE under load and under stress: 100 clients while real runs execute, a client that stops
reading, and a gateway that shuts down with streams open.

The 100 clients use the module's isolated stack (registry, gateway and streams of its own)
with an executor of the module's own on it: the session's executor is left alone, and no
other test's run request reaches this one.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, suppress
from typing import Any

import aiohttp
import msgspec
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats

from flowmesh_executor.main import start_executor
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto.ids import new_id
from flowmesh_proto.runs import StepLog
from flowmesh_proto.subjects import StreamNames, Subjects
from tests.helpers import until
from tests.integration.harness import Registry, new_tenant, unique

from .conftest import Client, Http, Isolated, Keys, gateway_settings, started
from .sse_client import Event, ExecutorDouble, SseReader, run_base, script, sse

pytestmark = pytest.mark.integration

CLIENTS = 100
RUNS = 10


def fan_out(name: str) -> dict[str, Any]:
    """A run that lasts about two seconds: a delay, then two branches that join."""
    return {
        "name": name,
        "nodes": [
            {"id": "start", "type": "noop"},
            {"id": "wait", "type": "delay", "parameters": {"duration": "PT2S"}},
            {"id": "left", "type": "transform", "parameters": {"output": {"side": "left"}}},
            {"id": "right", "type": "transform", "parameters": {"output": {"side": "right"}}},
            {"id": "join", "type": "noop"},
        ],
        "edges": [
            {"from": "start", "to": "wait"},
            {"from": "wait", "to": "left"},
            {"from": "wait", "to": "right"},
            {"from": "left", "to": "join"},
            {"from": "right", "to": "join"},
        ],
    }


async def metric(session: aiohttp.ClientSession, base: str, name: str) -> float:
    async with session.get(f"{base}/metrics") as resp:
        text = await resp.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def metric_is(session: aiohttp.ClientSession, base: str, name: str, value: float) -> bool:
    return await metric(session, base, name) == value


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def executing(isolated: Isolated) -> AsyncIterator[Isolated]:
    """The isolated stack with an executor of its own."""
    settings = ExecutorSettings(
        nats_url=isolated.registry.settings.nats_url,
        subject_prefix=isolated.subjects.prefix,
        stream_prefix=isolated.registry.settings.stream_prefix,
        http_port=0,
        lease_seconds=5.0,
        shutdown_timeout=2.0,
    )
    async with AsyncExitStack() as stack:
        await start_executor(settings, stack)
        yield isolated


async def test_a_hundred_clients_while_runs_execute_none_misses_an_event(
    executing: Isolated, nc: Nats
) -> None:
    http = executing.http
    client = Client(http, await new_tenant(executing.registry, "l"))
    double = ExecutorDouble(nc, executing.subjects, executing.streams)
    viewer = await client.key("viewer")
    fan = fan_out(unique("fan"))
    workflow = await client.create(fan["name"], nodes=fan["nodes"], edges=fan["edges"])
    tenant_url = http.url(f"{client.prefix}/events/stream")
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        AsyncExitStack() as streams,
    ):
        tenant_streams = await asyncio.gather(
            *(
                streams.enter_async_context(sse(session, tenant_url, viewer))
                for _ in range(CLIENTS - RUNS * 6)
            )
        )
        for stream in tenant_streams:  # each one's consumer exists once its first bytes came
            await until(lambda s=stream: s.response.content.total_bytes > 0, timeout=5)
        run_ids = []
        for _ in range(RUNS):
            status, body, _ = await client("POST", f"/workflows/{workflow['id']}/execute")
            assert status == 202, body
            run_ids.append(body["run_id"])
        run_streams: dict[str, list[SseReader]] = {}
        for run_id in run_ids:
            url = http.url(f"{client.prefix}/runs/{run_id}/events")
            run_streams[run_id] = await asyncio.gather(
                *(streams.enter_async_context(sse(session, url, viewer)) for _ in range(6))
            )
        gauge = "flowmesh_sse_streams{"
        await until(lambda: metric_is(session, http.base, gauge, CLIENTS), timeout=5)

        async def whole_run(stream: SseReader) -> list[Event]:
            return await stream.rest(timeout=30)

        readers = {
            run_id: [asyncio.create_task(whole_run(s)) for s in readers]
            for run_id, readers in run_streams.items()
        }
        for run_id, tasks in readers.items():
            subject = executing.subjects.run_events(client.tenant.id, run_id)
            for task in tasks:
                got = await task
                assert got[-1].kind == "run.succeeded", [e.kind for e in got]
                stored = await double.stored(subject)
                assert [e.id for e in got] == [seq for seq, _ in stored]
                assert [e.data for e in got] == [msgspec.json.decode(d) for _, d in stored]
        everything = await double.stored(f"{executing.subjects.prefix}.{client.tenant.id}.runs.*")
        assert len(everything) >= RUNS * 5
        for stream in tenant_streams:
            got = await stream.events(len(everything), timeout=30)
            assert [e.id for e in got] == [seq for seq, _ in everything]
        # The run streams ended with their runs; the tenant's go on.
        await until(lambda: metric_is(session, http.base, f'{gauge}scope="run"}}', 0), timeout=5)
        assert await metric(session, http.base, f'{gauge}scope="tenant"}}') == CLIENTS - RUNS * 6


# --- a client that stops reading ----------------------------------------------------------


class Stack(msgspec.Struct, frozen=True, kw_only=True):
    base: str
    http: Http


WRITE_TIMEOUT = 0.5


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def strict(registry: Registry, jwt_keys: tuple[Keys, list[str]]) -> AsyncIterator[Stack]:
    """A gateway that drops a client after half a second without progress (or 256 KiB behind)."""
    keys, files = jwt_keys
    settings = gateway_settings(
        registry,
        files,
        sse_heartbeat_seconds=0.2,
        sse_write_timeout_seconds=WRITE_TIMEOUT,
        sse_buffer_bytes=256 * 1024,
    )
    async with AsyncExitStack() as exits:
        gateway = await started(settings, exits)
        session = await exits.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        )
        base = f"http://127.0.0.1:{gateway.port}"
        yield Stack(base=base, http=Http(session, base, keys))


async def stalled_client(base: str, path: str, token: str) -> tuple[asyncio.StreamReader, Any]:
    """A client with a small receive buffer that reads the response head, then nothing."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200"), head
    return reader, writer


async def test_a_client_that_stops_reading_is_dropped_and_delays_no_other(
    strict: Stack, registry: Registry, nc: Nats, subjects: Subjects, streams: StreamNames
) -> None:
    client = Client(strict.http, await new_tenant(registry, "s"))
    double = ExecutorDouble(nc, subjects, streams)
    session = strict.http.session
    key = client.tenant.admin_key
    path = f"{client.prefix}/events/stream"
    dropped = "flowmesh_sse_dropped_clients_total"
    before = await metric(session, strict.base, dropped)
    async with AsyncExitStack() as exits:
        readers = [
            await exits.enter_async_context(sse(session, strict.base + path, key)) for _ in range(5)
        ]
        for stream in readers:
            await until(lambda s=stream: s.response.content.total_bytes > 0, timeout=5)
        slow_reader, slow_writer = await stalled_client(strict.base, path, key)
        exits.callback(slow_writer.close)
        await until(lambda: double.consumers_on(client.tenant.id), timeout=5)
        received: list[list[Event]] = [[] for _ in readers]

        async def read(index: int) -> None:
            while (event := await readers[index].next()) is not None:
                received[index].append(event)

        tasks = [asyncio.create_task(read(i)) for i in range(len(readers))]
        base = run_base(client.tenant.id, str(new_id()))
        await double.publish(script(base)[0])
        big = "x" * 32 * 1024
        published: list[int] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while await metric(session, strict.base, dropped) == before:
            assert loop.time() < deadline, "the stalled client was never dropped"
            for _ in range(10):
                log = StepLog(**base, node_id="n", message=big)
                published.append(await double.publish(log))
        # A little more, once it is gone, for the others.
        for _ in range(20):
            published.append(await double.publish(StepLog(**base, node_id="n", message="x")))
        await until(lambda: all(len(r) >= len(published) + 1 for r in received), timeout=10)
        worst = 0.0
        for events in received:
            assert [e.id for e in events[1:]] == published  # everything, in order, once
            worst = max(worst, *(e.at - double.published_at[e.id] for e in events[1:]))
        assert worst < WRITE_TIMEOUT, f"a reader waited {worst:.3f} s for an event"
        assert await metric(session, strict.base, dropped) == before + 1
        await until(lambda: metric_is(session, strict.base, "flowmesh_sse_streams{", 5), timeout=5)
        # Its consumer is gone too; the other five keep theirs.
        await until(lambda: _is(double.consumers_on(client.tenant.id), 5), timeout=10)
        # The stalled client finds its stream cut short: far less than was published.
        got = b""
        async with asyncio.timeout(10):
            with suppress(ConnectionError):  # aborted: a reset, or an end after what was sent
                while chunk := await slow_reader.read(65536):
                    got += chunk
        assert len(got) < len(published) * len(big) / 2
        for task in tasks:
            task.cancel()
    await until(lambda: _zero(double.consumers_on(client.tenant.id)), timeout=10)


async def _is(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def _zero(value: Any) -> bool:
    return await _is(value, 0)


# --- shutdown -------------------------------------------------------------------------------


async def test_shutdown_ends_open_streams_and_removes_their_consumers(
    registry: Registry,
    jwt_keys: tuple[Keys, list[str]],
    nc: Nats,
    subjects: Subjects,
    streams: StreamNames,
) -> None:
    _, files = jwt_keys
    tenant = await new_tenant(registry, "d")
    double = ExecutorDouble(nc, subjects, streams)
    base = run_base(tenant.id, str(new_id()))
    await double.publish(script(base)[0])  # a run that has not finished
    settings = gateway_settings(registry, files, shutdown_timeout=5.0)
    async with aiohttp.ClientSession() as session:
        exits = AsyncExitStack()
        gateway = await started(settings, exits)
        url = f"http://127.0.0.1:{gateway.port}/api/v1/{tenant.id}"
        async with (
            sse(session, f"{url}/runs/{base['run_id']}/events", tenant.admin_key) as run,
            sse(session, f"{url}/events/stream", tenant.admin_key) as every,
        ):
            assert [e.kind for e in await run.events(1)] == ["run.queued"]
            await until(lambda: every.response.content.total_bytes > 0, timeout=5)
            assert await double.consumers_on(tenant.id) == 2
            began = time.monotonic()
            await exits.aclose()
            assert time.monotonic() - began < 2.0  # the streams ended; no timeout was needed
            assert await run.rest(timeout=2) == [] and run.ended
            assert await every.rest(timeout=2) == [] and every.ended
    await until(lambda: _zero(double.consumers_on(tenant.id)), timeout=10)
