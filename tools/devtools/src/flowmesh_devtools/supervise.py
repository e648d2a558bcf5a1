"""The services of ``make dev``: each a process of its own, its output relayed, restarted
with backoff when it dies.

A :class:`Service` runs ``python -m <module>`` in its own session (a process group the
reaper can kill), with its output through a pipe that is relayed line by line as
``[<name>] <line>``, keeping the last :data:`TAIL_LINES` lines. :meth:`Service.supervise`
reports a service that exits on its own (its name, exit status and last lines) and starts
it again after :class:`Backoff`'s delay (1 s, doubling up to 30 s; back to 1 s once it
stayed up 60 s). :meth:`Service.stop` sends SIGTERM, then SIGKILL at the deadline given.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Lines of a service's output kept to report when it dies.
TAIL_LINES = 20
#: The longest line relayed at once (longer ones are cut into pieces).
LINE_LIMIT = 1 << 16


class ServiceFailed(RuntimeError):
    """A service exited, or did not answer, before it was ready."""


@dataclass(frozen=True)
class Backoff:
    """How long to wait before starting a service that died again (pure)."""

    initial: float = 1.0
    cap: float = 30.0
    stable_after: float = 60.0

    def next(self, previous: float | None, uptime: float) -> float:
        """The delay after a death ``uptime`` seconds after its start; ``previous``: the
        delay before that start (None for the first start)."""
        if previous is None or uptime >= self.stable_after:
            return self.initial
        return min(previous * 2, self.cap)


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


class Service:
    """One service process of the stack, started again whenever it dies."""

    def __init__(
        self,
        name: str,
        module: str,
        env: dict[str, str],
        health_url: str,
        *,
        on_start: Callable[[Service], None] = lambda _: None,
        on_exit: Callable[[Service], None] = lambda _: None,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.name, self.module, self.env, self.health_url = name, module, env, health_url
        self.on_start, self.on_exit, self.backoff = on_start, on_exit, backoff
        self.process: asyncio.subprocess.Process | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.started_at = 0.0
        self._relay: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, env=self.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches make dev, which stops it in order
            limit=LINE_LIMIT,
        )  # fmt: skip
        self.started_at = time.monotonic()
        self.on_start(self)
        self._relay = asyncio.create_task(self._relay_output(self.process))

    async def _relay_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            try:
                chunk = await process.stdout.readline()
            except ValueError:  # a line longer than LINE_LIMIT: its first piece
                chunk = await process.stdout.read(LINE_LIMIT)
            if not chunk:
                return
            line = chunk.decode(errors="replace").rstrip("\n")
            self.tail.append(line)
            with contextlib.suppress(OSError, ValueError):  # our output is gone: drain on
                print(f"[{self.name}] {line}", flush=True)

    async def ready(self, limit: float = 60.0) -> None:
        """Until its ``/readyz`` answers 200; :class:`ServiceFailed` if it exits first."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process is None or self.process.returncode is not None:
                await self._drain()
                raise ServiceFailed(self.death())
            if await answers_200(f"{self.health_url}/readyz"):
                return
            await asyncio.sleep(0.2)
        raise ServiceFailed(f"{self.name} did not answer on {self.health_url} within {limit:g} s")

    def death(self) -> str:
        status = self.process.returncode if self.process is not None else None
        how = f"was killed by signal {-status}" if status and status < 0 else f"exited ({status})"
        last = "\n".join(f"    {line}" for line in self.tail) or "    (no output)"
        return f"{self.name} {how}; its last lines:\n{last}"

    async def _drain(self, within: float = 2.0) -> None:
        """Until its last lines are relayed (its pipe may outlive it in a grandchild)."""
        if self._relay is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._relay), within)

    async def supervise(self) -> None:
        """Forever: when it dies, report it and start it again after the backoff delay."""
        delay: float | None = None
        while True:
            assert self.process is not None
            await self.process.wait()
            await self._drain()
            self.on_exit(self)
            uptime = time.monotonic() - self.started_at
            delay = self.backoff.next(delay, uptime)
            say(f"{self.death()}\n[dev] starting {self.name} again in {delay:g} s")
            await asyncio.sleep(delay)
            await self.start()
            try:
                await self.ready()
            except ServiceFailed as exc:
                if self.process.returncode is None:  # it runs, but does not answer
                    say(str(exc))
                continue  # it died again: reported above
            say(f"{self.name} ready again (pid {self.pid}, health on {self.health_url})")

    async def stop(self, deadline: float) -> None:
        """SIGTERM to its process group; SIGKILL at ``deadline`` (``time.monotonic()``)."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                say(f"{self.name} did not stop in time: killed")
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
        await self._drain(within=0.5)
        if self._relay is not None:
            self._relay.cancel()
        self.on_exit(self)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class ServiceGroup:
    """The services of a stack, in the order they were started."""

    def __init__(self) -> None:
        self.services: list[Service] = []
        self._supervisors: list[asyncio.Task[None]] = []

    async def start(self, service: Service, ready_within: float = 60.0) -> None:
        """Start ``service`` and wait until it is ready (:class:`ServiceFailed` if not)."""
        self.services.append(service)
        await service.start()
        await service.ready(ready_within)

    def supervise(self) -> None:
        """From now on, a service that dies is reported and started again."""
        self._supervisors = [asyncio.create_task(s.supervise()) for s in self.services]

    async def stop(self, grace: float) -> None:
        """Stop every service, the last started first, all within ``grace`` seconds."""
        for supervisor in self._supervisors:
            supervisor.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        deadline = time.monotonic() + grace
        for service in reversed(self.services):
            await service.stop(deadline)


async def answers_200(url: str, within: float = 1.0) -> bool:
    """Whether ``GET url`` (``http://host:port/path``) answers 200 within ``within`` s."""
    parts = urlsplit(url)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port), within
        )
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET {parts.path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
        status = await asyncio.wait_for(reader.readline(), within)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return status.split()[1:2] == [b"200"]
