"""Each example of ``examples/`` run with its one command, as its README says, against a
``make dev`` stack: ``uv run python examples/run.py <name>`` from the repository's root
with ``FLOWMESH_HOME`` pointing at the stack."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from flowmesh_devtools.localstack import free_port
from tests.e2e.devstack import REPO, DevStack

EXAMPLES = ("approval", "event-fanout", "nightly-report", "order-pipeline", "task-worker")


class Finished(msgspec.Struct, frozen=True):
    code: int
    out: str
    err: str

    @property
    def outputs(self) -> list[Any]:
        """Each run's output, as the runner prints it: ``output:`` then indented JSON."""
        found, lines = [], self.out.splitlines()
        for i, line in enumerate(lines):
            if line == "output:":
                rest = "\n".join(lines[i + 1 :])
                found.append(json.JSONDecoder().raw_decode(rest.lstrip())[0])
        return found

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def uv_run(*args: str) -> list[str]:
    """``uv run <args>`` (without syncing the shared environment), or the same interpreter
    that uv would run when uv is not on the PATH."""
    uv = shutil.which("uv")
    if uv is None:
        return [sys.executable, *args[1:]] if args[0] == "python" else [sys.executable, "-m", *args]
    return [uv, "run", "--no-sync", *args]


async def command(argv: list[str], env: dict[str, str], within: float = 60) -> Finished:
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        said = f"{out.decode()}\n{err.decode()}"
        raise AssertionError(f"{argv} ran over {within:g} s:\n{said}") from None
    return Finished(process.returncode or 0, out.decode(), err.decode())


async def example(name: str, env: dict[str, str]) -> Finished:
    """``uv run python examples/run.py <name>``; whatever its exit, never a traceback."""
    done = await command(uv_run("python", "examples/run.py", name), env)
    assert "Traceback" not in done.out + done.err, done
    return done


def test_every_example_folder_is_tested() -> None:
    folders = sorted(path.parent.name for path in (REPO / "examples").glob("*/example.py"))
    assert folders == list(EXAMPLES)
    for name in folders:
        assert (REPO / "examples" / name / "README.md").is_file(), name
        assert (REPO / "examples" / name / "workflow.yaml").is_file(), name


async def test_order_pipeline_retries_the_charge_then_routes_the_order(stack: DevStack) -> None:
    done = await example("order-pipeline", stack.environment())
    assert done.code == 0, done
    assert done.out.count("[payments] charge A-1001") == 3, done
    assert "step charge retrying after attempt 1: HttpStatus" in done.out, done
    assert "step charge succeeded" in done.out and "(3 attempts)" in done.out, done
    assert "step express skipped" in done.out and "step standard skipped" in done.out, done
    [output] = done.outputs
    assert output["shipping"] == "international" and output["charge_id"].startswith("ch_")
    # The watch command the runner prints works, and shows the same run.
    run_id = done.out.split("watch it live: uv run flowmesh watch ", 1)[1].split()[0]
    watched = await command(uv_run("flowmesh", "watch", run_id), stack.environment())
    assert watched.code == 0, watched
    assert "step charge succeeded" in watched.out and f"run {run_id} succeeded" in watched.out


async def test_nightly_report_registers_its_cron_trigger_and_runs_once_now(
    stack: DevStack,
) -> None:
    done = await example("nightly-report", stack.environment())
    assert done.code == 0, done
    assert "trigger 'nightly': cron '0 2 * * *' in Europe/Berlin" in done.out, done
    assert "T02:00:00+01:00" in done.out or "T02:00:00+02:00" in done.out, done  # next fire
    assert "cron trigger(s) armed" in done.out, done
    [report] = done.outputs
    assert report["runs"] == report["succeeded"] + report["failed"] + _others(report)
    assert report["failed"] == len(report["failed_runs"])
    again = await example("nightly-report", stack.environment())  # the key is made once
    assert again.code == 0, again
    assert "secret REPORT_API_KEY is already set" in again.out, again


def _others(report: dict[str, Any]) -> int:
    """Runs neither succeeded nor failed yet (the report runs while others may)."""
    return int(report["runs"]) - int(report["succeeded"]) - int(report["failed"])


async def test_event_fanout_maps_over_the_matching_events_items(stack: DevStack) -> None:
    done = await example("event-fanout", stack.environment())
    assert done.code == 0, done
    assert "the run's trigger: event 'berlin-batches', warehouse berlin" in done.out, done
    [manifest] = done.outputs
    assert manifest["parcels"] == 5 and manifest["freight"] == 2
    assert manifest["labels"][1] == "BER-B-0612-2/5 P-101 freight"


async def test_approval_waits_for_the_decision_event_both_ways(stack: DevStack) -> None:
    done = await example("approval", stack.environment())
    assert done.code == 0, done
    assert done.out.count("published event expense.decided") == 2, done
    approved, rejected = done.outputs
    assert approved == approved | {"expense_id": "EXP-2001", "result": "paid"}
    assert rejected == rejected | {"expense_id": "EXP-2002", "result": "returned"}
    assert "step return_it skipped" in done.out and "step pay skipped" in done.out, done


async def test_task_worker_serves_the_invoice_step(stack: DevStack) -> None:
    done = await example("task-worker", stack.environment())
    assert done.code == 0, done
    assert "[worker] worker ready: serving queue 'invoicing'" in done.out, done
    assert "[worker] invoicing order A-1002" in done.out, done
    assert "[worker] worker stopped" in done.out, done
    [outcome] = done.outputs
    assert outcome["total"] == "206.23 EUR" and outcome["invoice"].startswith("INV-")
    assert outcome["status"] == "sent to grace@example.com"


# --- bad inputs: a clear message, a non-zero exit, no traceback ------------------------------


async def test_an_unknown_example_is_refused_with_the_list(tmp_path: Path) -> None:
    done = await example("no-such-example", {**os.environ, "FLOWMESH_HOME": str(tmp_path)})
    assert done.code == 2, done
    assert "unknown example 'no-such-example'" in done.err, done
    assert all(name in done.err for name in EXAMPLES), done


async def test_no_dev_json_says_to_start_the_stack(tmp_path: Path) -> None:
    done = await example("order-pipeline", {**os.environ, "FLOWMESH_HOME": str(tmp_path)})
    assert done.code == 2, done
    assert f"{tmp_path / 'dev.json'} does not exist" in done.err and "make dev" in done.err


async def test_a_stack_that_is_not_running_is_named(tmp_path: Path) -> None:
    stale = {
        "gateway_url": f"http://127.0.0.1:{free_port()}",
        "tenant": "demo",
        "api_key": "fm_demo_x",
        "nats_url": "nats://127.0.0.1:1",
        "scheduler_health_url": "http://127.0.0.1:1",
    }
    (tmp_path / "dev.json").write_text(json.dumps(stale))
    done = await example("event-fanout", {**os.environ, "FLOWMESH_HOME": str(tmp_path)})
    assert done.code == 2, done
    assert "cannot reach the gateway" in done.err and "make dev" in done.err, done


@pytest.mark.parametrize("argv", [[], ["--list"]])
async def test_no_name_lists_the_examples(argv: list[str], tmp_path: Path) -> None:
    done = await command(uv_run("python", "examples/run.py", *argv), dict(os.environ))
    assert done.code == (0 if argv else 2), done
    assert all(name in done.out + done.err for name in EXAMPLES), done
