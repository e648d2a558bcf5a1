"""For the client SDK's and the CLI's tests: a real stack of their own (the isolated
registry and gateway, and an executor on the same streams), a tenant per test, workflow
documents, and a TCP proxy that can cut a connection partway through an answer."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import msgspec
import pytest_asyncio

from flowmesh_executor.main import start_executor
from flowmesh_executor.settings import ExecutorSettings
from tests.integration.harness import TenantHandle, new_tenant

from .conftest import Isolated


class Stack(msgspec.Struct, frozen=True, kw_only=True):
    """A gateway's URL and the isolated registry behind it (an executor runs its runs)."""

    url: str
    isolated: Isolated


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(isolated: Isolated) -> AsyncIterator[Stack]:
    settings = ExecutorSettings(
        nats_url=isolated.registry.settings.nats_url,
        subject_prefix=isolated.registry.settings.subject_prefix,
        stream_prefix=isolated.registry.settings.stream_prefix,
        http_port=0,
        lease_seconds=5.0,
        shutdown_timeout=2.0,
    )
    async with AsyncExitStack() as exits:
        await start_executor(settings, exits)
        yield Stack(url=isolated.http.base, isolated=isolated)


@pytest_asyncio.fixture(loop_scope="session")
async def tenant(stack: Stack) -> TenantHandle:
    return await new_tenant(stack.isolated.registry, "c")


def unique(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"


def greeting(name: str, **extra: Any) -> dict[str, Any]:
    """A valid workflow of three steps that greets ``input.name``."""
    return {
        "name": name,
        "description": "Say hello.",
        "tags": ["hello"],
        "nodes": [
            {
                "id": "shape",
                "type": "transform",
                "parameters": {"output": {"who": "{{ trigger.data.name }}"}},
            },
            {"id": "greet", "type": "transform", "parameters": {"output": {"text": "hello"}}},
            {"id": "done", "type": "noop"},
        ],
        "edges": [{"from": "shape", "to": "greet"}, {"from": "greet", "to": "done"}],
        **extra,
    }


GREETING_YAML = """\
name: {name}
description: Say hello.
tags: [hello]
nodes:
  - id: shape
    type: transform
    parameters:
      output: {{who: "{{{{ trigger.data.name }}}}"}}
  - id: done
    type: noop
edges:
  - from: shape
    to: done
"""

#: Well-formed YAML, not a valid workflow: an edge to a node that does not exist (line 7).
BROKEN_YAML = """\
name: {name}
nodes:
  - id: shape
    type: noop
edges:
  - from: shape
    to: nowhere
"""


class CuttingProxy:
    """A TCP proxy to ``target``; the first connection is cut once the answer has carried
    one whole Server-Sent Event with an ``id:`` and part of the next; later ones pass."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.connections = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        cut = self.connections == 1
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        up = asyncio.create_task(self._pipe(reader, up_writer, cut=False))
        down = asyncio.create_task(self._pipe(up_reader, writer, cut=cut))
        self._tasks |= {up, down}
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            for closing in (writer, up_writer):
                closing.close()
            self._tasks -= {up, down}

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, cut: bool
    ) -> None:
        seen = b""
        while data := await reader.read(65536):
            if cut:
                seen += data
                body = seen.find(b"\r\n\r\n")  # the events are after the headers
                first = seen.find(b"\nid: ", body) if body >= 0 else -1
                end = seen.find(b"\n\n", first) if first >= 0 else -1
                if end >= 0 and len(seen) > end + 12:
                    writer.write(data[: len(data) - (len(seen) - (end + 12))])
                    await writer.drain()
                    self.cuts += 1
                    writer.transport.abort()
                    return
            writer.write(data)
            await writer.drain()
