"""A network outage between a browser and the gateway, for the console's browser tests."""

from __future__ import annotations

import asyncio
from contextlib import suppress


class Cutter:
    """A TCP proxy in front of the gateway that can drop every connection at once and
    refuse new ones until it is restored: a network outage, as the browser sees it."""

    def __init__(self, port: int) -> None:
        self.port, self.down, self.open = port, False, set[asyncio.StreamWriter]()
        self.requests: list[bytes] = []  # what the browser sent, chunk by chunk
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.open |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    if sink is up_writer:
                        self.requests.append(data)
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.open -= {writer, up_writer}

    def cut(self) -> None:
        self.down = True
        for writer in self.open:
            writer.transport.abort()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
