"""What ``make dev`` started stops when ``make dev`` dies, even by SIGKILL.

``python -m flowmesh_devtools.reaper <home>`` is started first, in its own session, reading
a pipe from its starter (:class:`Reaper`). The starter writes each process group it starts
(``watch <pid>``) and each command that stops something it started (``command <key>
<json argv>``), and takes them back when it stopped them itself (``forget <pid>``, ``cancel
<key>``). A clean exit ends with ``bye``. When the pipe ends without ``bye`` (the starter
died), the reaper runs the commands, sends SIGTERM to every recorded process group, SIGKILL
to those still there after :data:`GRACE` seconds, and exits: within
``GRACE + COMMAND_TIMEOUT`` seconds at most. ``<home>`` only names the stack in ``ps``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

#: Seconds between SIGTERM and SIGKILL for the process groups of a starter that died.
GRACE = 3.0
#: Seconds a stop command may take (it runs while the groups have their SIGTERM).
COMMAND_TIMEOUT = 5.0


# --- the starter's side --------------------------------------------------------------------


class Reaper:
    """The reaper process of one stack, as its starter sees it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, home: Path) -> Reaper:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flowmesh_devtools.reaper", str(home),
            stdin=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C at the terminal does not reach it
        )  # fmt: skip
        return cls(process)

    def _send(self, line: str) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write(line.encode() + b"\n")

    def watch(self, pid: int) -> None:
        """Kill process group ``pid`` if we die."""
        self._send(f"watch {pid}")

    def forget(self, pid: int) -> None:
        self._send(f"forget {pid}")

    def command(self, key: str, argv: list[str]) -> None:
        """Run ``argv`` if we die (``key``: one word, to :meth:`cancel` it)."""
        self._send(f"command {key} {json.dumps(argv)}")

    def cancel(self, key: str) -> None:
        self._send(f"cancel {key}")

    async def close(self, within: float = 2.0) -> None:
        """Everything was stopped: ``bye``, and the reaper exits."""
        self._send("bye")
        stdin = self.process.stdin
        if stdin is not None:
            stdin.close()
            with contextlib.suppress(ConnectionError):
                await stdin.wait_closed()
        try:
            await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


# --- the reaper's side ---------------------------------------------------------------------


class Orders:
    """What the starter asked for so far (pure: fed line by line)."""

    def __init__(self) -> None:
        self.pids: dict[int, None] = {}
        self.commands: dict[str, list[str]] = {}
        self.bye = False

    def feed(self, line: str) -> None:
        verb, _, rest = line.strip().partition(" ")
        match verb:
            case "watch":
                self.pids[int(rest)] = None
            case "forget":
                self.pids.pop(int(rest), None)
            case "command":
                key, _, argv = rest.partition(" ")
                self.commands[key] = [str(arg) for arg in json.loads(argv)]
            case "cancel":
                self.commands.pop(rest, None)
            case "bye":
                self.bye = True


def reap(orders: Orders, grace: float = GRACE) -> None:
    """The starter died: stop what it left."""
    _signal_groups(orders.pids, signal.SIGTERM)
    for argv in orders.commands.values():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(  # noqa: S603 - argv comes from our own starter
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT, check=False, cwd="/",
            )  # fmt: skip
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in orders.pids):
        time.sleep(0.1)
    _signal_groups([pid for pid in orders.pids if _alive(pid)], signal.SIGKILL)


def _signal_groups(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:  # no such group: the process alone, if it is there
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        except PermissionError:
            pass


def _alive(pid: int) -> bool:
    """Whether the process (or its group) is still there, zombies aside."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here, or a group without its leader
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def serve(pipe: IO[str]) -> int:
    orders = Orders()
    for line in pipe:
        with contextlib.suppress(ValueError):
            orders.feed(line)
        if orders.bye:
            return 0
    reap(orders)
    home = " ".join(sys.argv[1:])
    print(f"[reaper] make dev ended without stopping ({home}): stopped what it left", flush=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(serve(sys.stdin))
