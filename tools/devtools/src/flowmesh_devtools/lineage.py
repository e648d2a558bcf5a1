"""Whether whoever started us is still there: ``make dev`` stops when ``make`` dies.

:func:`until_orphaned` returns when our parent changes (it died and we were adopted) or
when an ancestor in our process group dies: ``make`` and ``uv run`` (a shell runs
``make dev`` as one job, one process group; the shell itself is not in it, so
``nohup make dev &`` outlives its terminal). Ancestors are read from Linux's ``/proc``
(with their start times, so a reused pid is not taken for the same process); elsewhere
only the parent is watched.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

#: Seconds between two looks.
INTERVAL = 1.0


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, process group, start time) of ``pid``, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2]), fields[19]


def ancestors(pid: int) -> list[tuple[int, str]]:
    """``pid``'s ancestors in its own process group (pid and start time), nearest first."""
    found: list[tuple[int, str]] = []
    own = _stat(pid)
    if own is None:
        return found
    parent, group = own[0], own[1]
    while parent > 1:
        stat = _stat(parent)
        if stat is None or stat[1] != group:
            break
        found.append((parent, stat[2]))
        parent = stat[0]
    return found


def orphaned(parent: int, watched: list[tuple[int, str]]) -> bool:
    if os.getppid() != parent:
        return True
    for pid, started in watched:
        stat = _stat(pid)
        if stat is None or stat[2] != started:
            return True
    return False


async def until_orphaned(interval: float = INTERVAL) -> None:
    parent, watched = os.getppid(), ancestors(os.getpid())
    while not orphaned(parent, watched):  # noqa: ASYNC110 - nothing to wait on but time
        await asyncio.sleep(interval)
