"""The README's quickstart, as written: after ``make dev``, its shell block (a workflow
applied, listed, run and watched, then read) run against a ``make dev`` stack of its own,
with the ``flowmesh`` command of this environment."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path

import yaml

from tests.e2e.devstack import REPO, DevStack


def quickstart_block() -> str:
    """The shell block of the README's Quickstart that uses the CLI."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("### Deploying", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    [block] = [b for b in blocks if "flowmesh workflows apply" in b]
    return str(block)


async def bash(script: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_quickstart_runs_as_written(stack: DevStack, tmp_path: Path) -> None:
    flowmesh = shutil.which("flowmesh", path=str(Path(sys.executable).parent))
    assert flowmesh is not None
    block = quickstart_block().replace("uv run flowmesh", flowmesh)
    first, last = block.rsplit("\n", 2)[0], block.rsplit("\n", 2)[1]
    code, out, err = await bash(first, tmp_path, stack.environment())
    assert code == 0, f"{out}\n{err}\n{stack.output()}"
    run_id = re.findall(r"^run (\S+) succeeded in ", out, flags=re.MULTILINE)
    assert len(run_id) == 1, out
    assert "<run_id>" in last
    code, shown, err = await bash(
        last.replace("<run_id>", run_id[0]), tmp_path, stack.environment()
    )
    assert code == 0, err
    run = yaml.safe_load(shown)
    assert (run["status"], run["output"]) == ("succeeded", {"message": "Hello, Ada"})
