"""``flowmesh watch``: follow a run's events, fold them, show them, exit with the outcome.

Two displays: in a terminal a live table redrawn on every event and a few times a second
(durations of running steps tick); elsewhere (a pipe, a file, CI logs) one plain line per
change of the run or of a step, flushed at once. Reconnects and unreadable events are
reported on the error stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Protocol, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from flowmesh_cli import render
from flowmesh_cli.errors import EXIT_OK, EXIT_RUN_FAILED
from flowmesh_cli.progress import Change, Progress, RunHeader
from flowmesh_client import Client, Delivery, Reconnecting, Skipped


class Display(Protocol):
    """Shows one run's :class:`Progress` (given when it is made) while ``watch`` folds it."""

    async def __aenter__(self) -> Display: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def changed(self, changes: list[Change]) -> None:
        """An event was folded; ``changes`` is what it changed (often nothing)."""

    def reconnecting(self, item: Reconnecting) -> None:
        """The stream was lost and will be opened again."""

    def skipped(self, item: Skipped) -> None:
        """An event could not be read."""


class DisplayFactory(Protocol):
    def __call__(self, progress: Progress) -> Display: ...


async def watch(client: Client, run_id: str, display_for: DisplayFactory) -> int:
    """Follow run ``run_id`` to its end: 0 if it succeeded, 6 if not."""
    progress = Progress(run_id)
    async with display_for(progress) as display:
        stream = client.runs.stream(run_id)
        async with contextlib.aclosing(stream):
            async for item in stream:
                match item:
                    case Delivery(event=event, seq=seq):
                        display.changed(progress.apply(event, seq))
                    case Reconnecting():
                        display.reconnecting(item)
                    case Skipped():
                        display.skipped(item)
    return EXIT_OK if progress.run.status == "succeeded" else EXIT_RUN_FAILED


class PlainLines:
    """One line per change, timed by the events themselves (so the output is reproducible)."""

    def __init__(self, progress: Progress, out: TextIO, err: TextIO) -> None:
        self._progress = progress
        self._out, self._err = out, err
        self._last: dict[str, str] = {}  # what was last printed for the run ("") and each step

    async def __aenter__(self) -> PlainLines:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._out.flush()

    def changed(self, changes: list[Change]) -> None:
        now = self._progress.clock
        if now is None:
            return
        for change in changes:
            key = "" if isinstance(change, RunHeader) else change.node_id
            text = render.line(change, now)
            if self._last.get(key) != text:
                self._last[key] = text
                self._out.write(text + "\n")
        self._out.flush()

    def reconnecting(self, item: Reconnecting) -> None:
        self._err.write(f"flowmesh: {_reconnect_note(item)}\n")
        self._err.flush()

    def skipped(self, item: Skipped) -> None:
        text = f"skipped event {item.id or '?'} ({item.sse_event}): {item.reason}"
        self._err.write(f"flowmesh: {text}\n")
        self._err.flush()


class LiveTable:
    """A rich live table, redrawn on each change and ``per_second`` times a second."""

    def __init__(self, progress: Progress, console: Console, per_second: float = 4.0) -> None:
        self._progress = progress
        self._console = console
        self._period = 1 / per_second
        self._note = ""
        self._live = Live(
            console=console,
            auto_refresh=False,  # refreshed from the event loop: no thread reads the fold
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._ticker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveTable:
        self._live.start()
        self._redraw()
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._note = ""
        self._live.update(render.board(self._progress, datetime.now(UTC)), refresh=False)
        self._live.stop()  # draws it a last time, and leaves it on the screen

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            self._redraw()

    def _redraw(self) -> None:
        now = datetime.now(UTC)
        self._live.update(render.board(self._progress, now, self._note), refresh=True)

    def changed(self, changes: list[Change]) -> None:
        self._note = ""
        if changes:
            self._redraw()

    def reconnecting(self, item: Reconnecting) -> None:
        self._note = _reconnect_note(item)
        self._redraw()

    def skipped(self, item: Skipped) -> None:
        text = f"skipped event {item.id or '?'} ({item.sse_event}): {item.reason}"
        self._live.console.print(Text(text, style="yellow"))


def _reconnect_note(item: Reconnecting) -> str:
    after = f" after event {item.last_event_id}" if item.last_event_id else ""
    return (
        f"{item.reason}; reconnecting{after} in {item.delay:.1f}s ({item.attempt}/{item.retries})"
    )
