"""``make dev``'s life: it says what is missing in one sentence, restarts a service that
dies while the rest run on, and leaves nothing running when it is killed outright.

Each test finds what a stack left by its ``FLOWMESH_HOME``: a process whose command line,
working directory or environment names it (Linux ``/proc``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from flowmesh_devtools.localstack import NatsHandle, free_port
from flowmesh_devtools.reaper import GRACE
from tests.e2e.devstack import DEV_SCRIPT, REPO, DevStack, dev_stack
from tests.helpers import until

pytestmark = pytest.mark.integration

#: Seconds within which nothing of a SIGKILLed make dev may remain.
LEFT_WITHIN = 10.0
assert GRACE + 5 <= LEFT_WITHIN


def remains(home: Path) -> list[str]:
    """The processes (``pid command``) that name ``home``, zombies aside."""
    found = []
    needle, variable = str(home), f"FLOWMESH_HOME={home}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()):
            continue
        with contextlib.suppress(OSError, IndexError):
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            names = needle in command
            with contextlib.suppress(OSError):
                names = names or os.readlink(proc / "cwd").startswith(needle)
            with contextlib.suppress(OSError):
                names = names or variable in (proc / "environ").read_bytes().split(b"\0")
            if names:
                found.append(f"{proc.name} {command.strip()}")
    return found


def kill_remains(home: Path) -> None:
    """After a failed test: what names ``home`` is this test's own."""
    for line in remains(home):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(line.split()[0]), signal.SIGKILL)


@contextlib.contextmanager
def shared_home() -> Any:
    """A FLOWMESH_HOME the ``postgres`` user can reach (we may be root: see localstack)."""
    home = Path(tempfile.mkdtemp(prefix="flowmesh-life-"))
    home.chmod(0o755)
    try:
        yield home
    finally:
        kill_remains(home)
        shutil.rmtree(home, ignore_errors=True)


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env.update(FLOWMESH_HOME=str(home), FLOWMESH_GATEWAY_PORT=str(free_port()))
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


async def test_without_postgresql_it_says_what_to_install_and_stops_its_nats() -> None:
    """No server binaries (none on PATH, none where Debian puts them) and no DATABASE_URL."""
    hide = "import runpy, flowmesh_devtools.localstack as l; l.DEBIAN_BINDIRS = '/none/*/bin'; "
    hide += f"runpy.run_path({str(DEV_SCRIPT)!r}, run_name='__main__')"
    with shared_home() as home:
        empty = home / "bin"
        empty.mkdir()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", hide, cwd=REPO, env=environment(home, PATH=str(empty)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        said = out.decode() + err.decode()
        assert process.returncode == 1, said
        assert "NATS started" in said  # so there was one to stop
        assert "PostgreSQL server binaries (initdb, pg_ctl) were not found" in err.decode()
        assert "sudo apt-get install postgresql" in said and "DATABASE_URL" in said
        assert "Traceback" not in said
        assert remains(home) == []


@contextlib.asynccontextmanager
async def dev_py(home: Path, log: Path, **extra: str) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(DEV_SCRIPT), cwd=REPO, env=environment(home, **extra),
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def dev_json(home: Path) -> dict[str, Any] | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        info = json.loads((home / "dev.json").read_text())
        return info if isinstance(info, dict) else None
    return None


async def test_killed_outright_it_leaves_nothing_running() -> None:
    """Its own NATS and its own PostgreSQL cluster under FLOWMESH_HOME, then SIGKILL."""
    with shared_home() as home:
        log = home / "dev.log"
        async with dev_py(home, log) as process:
            info = await until(
                lambda: process.returncode is not None or dev_json(home), 120, interval=0.2
            )
            assert isinstance(info, dict), log.read_text()[-4000:]
            said = log.read_text()
            assert "NATS started" in said and "PostgreSQL started" in said, said[-4000:]
            pids = info["pids"]
            assert {"reaper", "nats", "registry", "executor-1", "scheduler", "gateway"} <= set(pids)
            before = remains(home)
            assert any("postgres" in line for line in before), before
            assert any("nats-server" in line for line in before), before
            process.kill()
            await process.wait()
        with contextlib.suppress(AssertionError):
            await until(lambda: not remains(home), LEFT_WITHIN, interval=0.2)
        assert remains(home) == []
        assert "[reaper] make dev ended without stopping" in log.read_text()


async def gateway_answers(http: aiohttp.ClientSession, url: str) -> bool:
    async with http.get(f"{url}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as answer:
        return answer.status == 200


async def test_a_killed_executor_is_reported_and_started_again(
    nats_server: NatsHandle, postgres_url: str
) -> None:
    env = {"FLOWMESH_DEV_EXECUTORS": "2"}
    async with dev_stack(nats_url=nats_server.url, database_url=postgres_url, env=env) as stack:
        await restart_one_executor(stack)
        assert remains(stack.home)  # still running: the block's end stops it


async def restart_one_executor(stack: DevStack) -> None:
    first = stack.info["pids"]["executor-1"]
    health = stack.info["executor_health_urls"]
    assert len(health) == 2
    async with aiohttp.ClientSession() as http:
        os.kill(first, signal.SIGKILL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while "executor-1 ready again" not in stack.output():
            assert loop.time() < deadline, stack.output()
            assert await gateway_answers(http, stack.gateway_url)  # the rest ran on
            await asyncio.sleep(0.2)
        said = stack.log.read_text()  # all of it: stack.output() is its tail
        assert "executor-1 was killed by signal 9; its last lines:" in said
        assert "starting executor-1 again in 1 s" in said
        assert "[executor-1] " in said and "[executor-2] " in said
        again = dev_json(stack.home)
        assert again is not None
        assert again["pids"]["executor-1"] not in (first, None)
        assert again["pids"]["executor-2"] == stack.info["pids"]["executor-2"]
        async with http.get(f"{health[0]}/readyz") as answer:
            assert answer.status == 200


async def test_it_stops_when_whoever_started_it_dies(
    nats_server: NatsHandle, postgres_url: str
) -> None:
    """make -> uv run -> dev.py, as three shells: ``make`` (not dev.py's parent) is killed."""
    database = f"fm_e2e_{secrets.token_hex(4)}"
    with shared_home() as home:
        (home / "uv.sh").write_text('"$PY" "$DEV"; true\n')
        (home / "make.sh").write_text(f"echo $$ > {home}/make.pid; sh {home}/uv.sh; true\n")
        env = environment(
            home, PY=sys.executable, DEV=str(DEV_SCRIPT), NATS_URL=nats_server.url,
            DATABASE_URL=postgres_url, FLOWMESH_DEV_DATABASE=database,
        )  # fmt: skip
        log = home / "dev.log"
        with log.open("wb") as output:
            shell = await asyncio.create_subprocess_exec(
                "sh", "-c", f"sh {home}/make.sh; true", cwd=REPO, env=env,
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            info = await until(
                lambda: shell.returncode is not None or dev_json(home), 90, interval=0.2
            )
            assert isinstance(info, dict), log.read_text()[-4000:]
            os.kill(int((home / "make.pid").read_text()), signal.SIGKILL)
            await asyncio.wait_for(shell.wait(), 5)
            with contextlib.suppress(AssertionError):
                await until(lambda: not remains(home), 30, interval=0.2)
            assert remains(home) == []
            said = log.read_text()
            assert "[dev] whoever started make dev is gone" in said
            assert said.rstrip().endswith("[dev] stopped"), said[-2000:]
            assert "[reaper]" not in said  # it stopped by itself
        finally:
            conn = await asyncpg.connect(postgres_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await conn.close()
