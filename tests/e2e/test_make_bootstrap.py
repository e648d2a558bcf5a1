"""``make dev`` and ``make test`` bring their own uv: on a PATH without one, the Makefile
installs the pinned uv under a project-local directory (one ``pip install``) and uses it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from flowmesh_devtools.localstack import NatsHandle
from tests.e2e.devstack import REPO, dev_stack

MAKEFILE = REPO / "Makefile"


def pinned_version() -> str:
    found = re.search(r"^UV_VERSION := (\S+)$", MAKEFILE.read_text(), re.MULTILINE)
    assert found, "the Makefile pins no UV_VERSION"
    return found.group(1)


def path_without_uv(venv: Path) -> str:
    """A fresh virtual environment's python first, then the system's programs (make, git)."""
    make = shutil.which("make")
    assert make is not None
    dirs = [str(venv / "bin"), str(Path(make).parent), "/usr/bin", "/bin"]
    path = os.pathsep.join(dict.fromkeys(dirs))
    assert shutil.which("uv", path=path) is None, f"uv is on {path}"
    return path


@pytest.mark.network
def test_make_installs_the_pinned_uv_when_none_is_on_path(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": path_without_uv(venv)}
    env.pop("UV", None)
    tools = tmp_path / "project" / ".flowmesh" / "tools"
    plan = subprocess.run(
        ["make", "-n", "-C", str(REPO), f"UV_HOME={tools}", "dev"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"{tools}/bin/uv run python scripts/dev.py" in plan.stdout, plan.stdout
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), f"UV_HOME={tools}", "uv"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    version = subprocess.run(
        [str(tools / "bin" / "uv"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.split()[:2] == ["uv", pinned_version()]
    again = subprocess.run(
        ["make", "-n", "-C", str(REPO), f"UV_HOME={tools}", "uv"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "pip install" not in again.stdout  # installed once, then reused


def test_make_uses_the_uv_on_path_when_there_is_one(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    fake = venv / "bin" / "uv"
    fake.write_text('#!/bin/sh\necho uv-on-path "$@"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
    env.pop("UV", None)
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), f"UV_HOME={tmp_path}/tools", "uv"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.split("\n")[:2] == [str(fake), "uv-on-path --version"]
    assert not (tmp_path / "tools").exists()


@pytest.mark.network
async def test_make_dev_on_a_path_without_uv_brings_up_a_ready_stack(
    tmp_path: Path, nats_server: NatsHandle, postgres_url: str
) -> None:
    """The whole first command: ``make dev`` with no uv on PATH installs the pinned one
    (once), syncs and starts the stack, whose gateway then answers; Ctrl-C stops it."""
    venv = tmp_path / "venv"
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "venv", str(venv)], check=True)
    tools = tmp_path / "tools"
    env: dict[str, str | None] = {"PATH": path_without_uv(venv), "UV": None}
    command = ["make", "--no-print-directory", f"UV_HOME={tools}", "dev"]
    async with dev_stack(
        nats_url=nats_server.url,
        database_url=postgres_url,
        env=env,
        command=command,
        start_timeout=300,
    ) as stack:
        assert (tools / "bin" / "uv").exists()  # the pinned uv, brought by make itself
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{stack.gateway_url}/readyz") as answer,
        ):
            assert answer.status == 200
        assert stack.info["tenant"] == "demo" and stack.info["api_key"]
