"""``make dev`` as a test fixture: ``scripts/dev.py`` run as a subprocess, as a developer runs it.

``dev_stack(nats_url=..., database_url=...)`` starts ``sys.executable scripts/dev.py`` (what
``make dev`` runs) from the repository's root with:

- ``FLOWMESH_HOME``: a fresh temporary folder (removed at the end), where dev.py writes
  ``dev.json`` and its output goes to ``dev.log``;
- ``FLOWMESH_GATEWAY_PORT``: a free port;
- ``NATS_URL``: the server to use, or a comma-separated list of servers (a cluster); dev.py
  starts no NATS of its own when it answers;
- ``DATABASE_URL``: any database on the PostgreSQL server to use (the session's own
  database will do: it is only connected to, to create the stack's), and
  ``FLOWMESH_DEV_DATABASE``: a database of the stack's own, ``fm_e2e_<random>``, created by
  dev.py and dropped here at the end;
- and the extra variables given (``env``), which win over all of these (None unsets one).

The stack uses dev.py's defaults for everything else, notably the subject prefix ``fm``
and the ``FM_*`` streams: the session's fixtures use random prefixes of their own
(``fmt<hex>``, ``FMT<hex>``; the fault tests ``fmf<hex>``), so nothing collides as long as
one stack at a time runs on a given NATS server.

It waits (up to ``start_timeout``) until ``dev.json`` is written, failing with dev.py's
output if dev.py exits first, and yields a :class:`DevStack`. On exit it sends SIGINT
(Ctrl-C, which dev.py answers by stopping its services, then itself), waits up to
``stop_timeout``, kills what is left, and drops the database.
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
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from flowmesh_devtools.localstack import free_port

REPO = Path(__file__).resolve().parents[2]
DEV_SCRIPT = REPO / "scripts" / "dev.py"
LOG_TAIL = 6000  # characters of dev.py's output shown when it fails


@dataclass(frozen=True)
class DevStack:
    """A running ``make dev`` stack."""

    home: Path  # its FLOWMESH_HOME
    info: dict[str, Any]  # dev.json: gateway_url, tenant, api_key, admin_token, nats_url, ...
    database: str
    log: Path  # dev.py's output, and its services'
    pid: int

    @property
    def gateway_url(self) -> str:
        return str(self.info["gateway_url"])

    def environment(self, **extra: str) -> dict[str, str]:
        """This process's environment pointed at the stack, as a shell after ``make dev``."""
        return {**os.environ, "FLOWMESH_HOME": str(self.home), **extra}

    def output(self) -> str:
        """The tail of what dev.py and its services printed."""
        return _tail(self.log)


@contextlib.asynccontextmanager
async def dev_stack(
    *,
    nats_url: str,
    database_url: str,
    env: Mapping[str, str | None] | None = None,
    start_timeout: float = 90.0,
    stop_timeout: float = 60.0,
    command: Sequence[str] | None = None,
) -> AsyncIterator[DevStack]:
    """``scripts/dev.py`` running on these servers until the block ends (see the module);
    ``command`` runs instead (``make dev``), stopped by a SIGINT to its process group, as
    Ctrl-C at a terminal stops it."""
    home = Path(tempfile.mkdtemp(prefix="flowmesh-dev-"))
    database = f"fm_e2e_{secrets.token_hex(4)}"
    log = home / "dev.log"
    environment = {
        **os.environ,
        "FLOWMESH_HOME": str(home),
        "FLOWMESH_GATEWAY_PORT": str(free_port()),
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "FLOWMESH_DEV_DATABASE": database,
        "PYTHONUNBUFFERED": "1",
    }
    for name, value in (env or {}).items():  # None: unset (``uv run`` sets UV, for one)
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *(command or [sys.executable, str(DEV_SCRIPT)]), cwd=REPO, env=environment,
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C at the terminal reaches pytest only
        )  # fmt: skip
    try:
        info = await _until_written(home / "dev.json", process, log, start_timeout)
        yield DevStack(
            home=home,
            info=info,
            database=environment["FLOWMESH_DEV_DATABASE"],
            log=log,
            pid=process.pid,
        )
    finally:
        try:
            await _stop(process, stop_timeout, log, group=command is not None)
        finally:
            await _drop_database(database_url, environment["FLOWMESH_DEV_DATABASE"])
            shutil.rmtree(home, ignore_errors=True)


async def _until_written(
    path: Path, process: asyncio.subprocess.Process, log: Path, within: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if process.returncode is not None:
            raise AssertionError(
                f"scripts/dev.py exited with status {process.returncode} before writing "
                f"{path.name}; its output:\n{_tail(log)}"
            )
        with contextlib.suppress(FileNotFoundError, ValueError):  # absent, or half written
            info = json.loads(_read(path))
            if isinstance(info, dict) and info.get("gateway_url"):
                return info
        await asyncio.sleep(0.1)
    raise AssertionError(f"scripts/dev.py wrote no {path.name} within {within:g} s:\n{_tail(log)}")


async def _stop(
    process: asyncio.subprocess.Process, within: float, log: Path, *, group: bool = False
) -> None:
    """Ctrl-C, as a developer stops ``make dev`` (to the whole process group when
    ``group``); dev.py then stops each of its services."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signal.SIGINT)
            else:
                process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), within)
        except TimeoutError:
            services = _children(process.pid)  # their own sessions: killed one by one
            for pid in [process.pid, *services]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await process.wait()
            raise AssertionError(
                f"scripts/dev.py did not stop within {within:g} s of SIGINT (killed it and "
                f"its services {services}); its output:\n{_tail(log)}"
            ) from None


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux ``/proc``; none found elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


async def _drop_database(database_url: str, name: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _read(path: Path) -> str:
    return path.read_text()


def _tail(log: Path) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return text if len(text) <= LOG_TAIL else "...\n" + text[-LOG_TAIL:]
