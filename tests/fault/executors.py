"""Executor processes (``python -m flowmesh_executor``) that a test can kill, pause and resume.

Each one logs JSON lines to its own file, which the test reads (``run.fenced``,
``nats.reconnected``) and which is worth reading when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from flowmesh_devtools.localstack import LOOPBACK, free_port
from flowmesh_proto.subjects import StreamNames, Subjects
from tests.helpers import until
from tests.integration.harness import stream_prefix_of

PREFIX = "FLOWMESH_EXECUTOR_"


@dataclass
class ExecutorProcess:
    process: asyncio.subprocess.Process
    health_port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def name(self) -> str:
        """What the executor calls itself (``run.started``'s ``executor``)."""
        return f"{socket.gethostname()}:{self.pid}"

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
        return lines

    def logged(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        """The log lines of ``event`` whose fields include ``fields``."""
        return [
            line
            for line in self.logs()
            if line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
        ]

    async def ready(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        async with aiohttp.ClientSession() as session:

            async def answers() -> bool:
                assert self.alive, f"executor {self.pid} exited: {self.log_path.read_text()}"
                url = f"http://{LOOPBACK}:{self.health_port}/readyz"
                try:
                    async with session.get(url) as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await until(answers, timeout, interval=0.05, message=f"executor {self.pid} ready")

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    async def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()

    async def stop(self, grace: float = 10.0) -> int:
        """SIGTERM (after SIGCONT, in case it is paused); SIGKILL after ``grace``."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                await self.kill()
        return await self.process.wait()


def executor_environment(
    nats_url: str, subjects: Subjects, streams: StreamNames, lease_seconds: float
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(PREFIX) and key != "NATS_URL"
    }
    env.update(
        {
            f"{PREFIX}NATS_URL": nats_url,
            f"{PREFIX}SUBJECT_PREFIX": subjects.prefix,
            f"{PREFIX}STREAM_PREFIX": stream_prefix_of(streams),
            f"{PREFIX}LEASE_SECONDS": str(lease_seconds),
            f"{PREFIX}SHUTDOWN_TIMEOUT": "2",
            f"{PREFIX}HTTP_ALLOW_PRIVATE": "true",
            f"{PREFIX}LOG_FORMAT": "json",
        }
    )
    return env


@asynccontextmanager
async def executors(
    count: int, env: dict[str, str], logs: Path
) -> AsyncIterator[list[ExecutorProcess]]:
    """``count`` executor processes, ready; every one still running at the end is stopped
    (and killed if it does not stop)."""
    started: list[ExecutorProcess] = []
    try:
        for _ in range(count):
            port = free_port()
            log_path = logs / f"executor-{len(started)}-{port}.log"
            with log_path.open("wb") as out:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "flowmesh_executor",
                    env={**env, f"{PREFIX}HTTP_PORT": str(port)},
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started.append(ExecutorProcess(process, port, log_path))
        await asyncio.gather(*(executor.ready() for executor in started))
        yield started
    finally:
        await asyncio.gather(*(executor.stop() for executor in started))
