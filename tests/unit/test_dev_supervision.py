"""``make dev``'s supervision: the restart backoff (pure), the reaper's orders and the
reaper itself (a real process: what it was told about dies with its starter, not before),
and the executors' count."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowmesh_devtools.localstack import free_port
from flowmesh_devtools.reaper import GRACE, Orders, Reaper
from flowmesh_devtools.supervise import Backoff, Service, ServiceFailed
from tests.helpers import until
from tests.unit.test_dev_script import dev


def test_the_backoff_doubles_to_its_cap_and_resets_once_a_service_stayed_up() -> None:
    backoff = Backoff(initial=1, cap=30, stable_after=60)
    delays: list[float] = []
    previous: float | None = None
    for _ in range(7):
        previous = backoff.next(previous, uptime=2)
        delays.append(previous)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.next(30, uptime=59.9) == 30
    assert backoff.next(30, uptime=60) == 1


def test_the_reaper_keeps_what_it_is_told_until_it_is_taken_back() -> None:
    orders = Orders()
    for line in ("watch 10", "watch 11", "forget 10", 'command pg ["pg_ctl", "stop"]',
                 'command other ["true"]', "cancel other"):  # fmt: skip
        orders.feed(line)
    assert list(orders.pids) == [11]
    assert orders.commands == {"pg": ["pg_ctl", "stop"]}
    assert not orders.bye
    orders.feed("bye")
    assert orders.bye


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _sleeper() -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "sleep", "60", start_new_session=True, stdout=subprocess.DEVNULL
    )


async def test_the_reaper_stops_what_its_starter_left_when_the_starter_dies(
    tmp_path: Path,
) -> None:
    reaper = await Reaper.start(tmp_path)
    sleeper = await _sleeper()
    marker = tmp_path / "stopped"
    reaper.watch(sleeper.pid)
    reaper.command("mark", ["touch", str(marker)])
    assert reaper.process.stdin is not None
    await reaper.process.stdin.drain()
    await asyncio.sleep(0.3)
    assert sleeper.returncode is None and not marker.exists()
    reaper.process.stdin.close()  # as when its starter is killed: the pipe ends, no bye
    await asyncio.wait_for(reaper.process.wait(), GRACE + 10)
    await asyncio.wait_for(sleeper.wait(), 1)
    assert sleeper.returncode == -signal.SIGTERM
    assert marker.exists()


async def test_the_reaper_leaves_everything_after_bye(tmp_path: Path) -> None:
    reaper = await Reaper.start(tmp_path)
    sleeper = await _sleeper()
    kept = await _sleeper()
    reaper.watch(sleeper.pid)
    reaper.watch(kept.pid)
    reaper.forget(kept.pid)
    reaper.command("mark", ["touch", str(tmp_path / "stopped")])
    await reaper.close()
    assert reaper.process.returncode == 0
    try:
        await asyncio.sleep(0.5)
        assert _alive(sleeper.pid) and _alive(kept.pid)
        assert not (tmp_path / "stopped").exists()
    finally:
        for process in (sleeper, kept):
            process.kill()
            await process.wait()


async def test_a_forgotten_process_outlives_a_dead_starter(tmp_path: Path) -> None:
    reaper = await Reaper.start(tmp_path)
    watched, forgotten = await _sleeper(), await _sleeper()
    reaper.watch(watched.pid)
    reaper.watch(forgotten.pid)
    reaper.forget(forgotten.pid)
    assert reaper.process.stdin is not None
    reaper.process.stdin.close()
    try:
        await asyncio.wait_for(watched.wait(), GRACE + 5)
        await asyncio.wait_for(reaper.process.wait(), 5)
        assert _alive(forgotten.pid)
    finally:
        forgotten.kill()
        await forgotten.wait()


async def test_ancestors_are_read_within_the_process_group() -> None:
    show = "from flowmesh_devtools.lineage import ancestors; import os; "
    show += "print(' '.join(str(pid) for pid, _ in ancestors(os.getpid())))"
    shell = f"{sys.executable} -c {shlex.quote(show)}; true"  # sh stays its parent
    same = await asyncio.create_subprocess_exec("sh", "-c", shell, stdout=subprocess.PIPE)
    own = await asyncio.create_subprocess_exec(
        "sh", "-c", shell, stdout=subprocess.PIPE, start_new_session=True
    )
    found, _ = await same.communicate()  # in our group: sh, then us, and so on up
    assert found.split()[:2] == [str(same.pid).encode(), str(os.getpid()).encode()]
    found, _ = await own.communicate()  # sh leads a group of its own: it, and no further
    assert found.split() == [str(own.pid).encode()]


@pytest.mark.parametrize("count", ["0", "9", "two", "-1"])
def test_the_executors_count_is_checked(
    count: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(dev.DevError, match="FLOWMESH_DEV_EXECUTORS"):
        dev.read_config({"FLOWMESH_DEV_EXECUTORS": count})


def test_one_executor_by_default_and_up_to_eight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert dev.read_config({}).executors == 1
    assert dev.read_config({"FLOWMESH_DEV_EXECUTORS": "8"}).executors == dev.MAX_EXECUTORS == 8


def _stub(tmp_path: Path, name: str, body: str) -> Service:
    """A service whose module is ``body``, on a PYTHONPATH of its own."""
    (tmp_path / f"{name}.py").write_text(body)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    return Service(name, name, env, f"http://127.0.0.1:{free_port()}")


async def test_a_service_that_ignores_sigterm_is_killed_at_the_deadline(tmp_path: Path) -> None:
    body = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    body += "print('up')\ntime.sleep(60)\n"
    service = _stub(tmp_path, "stubborn", body)
    await service.start()
    await until(lambda: "up" in service.tail, 10)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await service.stop(deadline=time.monotonic() + 1.0)
    assert 0.9 <= loop.time() - began < 3
    assert service.process is not None and service.process.returncode == -signal.SIGKILL


async def test_a_service_that_dies_before_it_is_ready_says_how_with_its_last_lines(
    tmp_path: Path,
) -> None:
    body = "import sys\nfor i in range(30): print(f'line {i}')\nsys.exit(3)\n"
    service = _stub(tmp_path, "failing", body)
    await service.start()
    with pytest.raises(ServiceFailed) as failed:
        await service.ready(limit=20)
    message = str(failed.value)
    assert message.startswith("failing exited (3); its last lines:")
    assert "line 29" in message and "line 10" in message and "line 9\n" not in message
