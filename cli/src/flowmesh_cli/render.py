"""How a run's progress looks: a rich table for a terminal, plain lines for everything else.

Both take ``now`` as an argument (the live table passes the wall clock, the line display
the latest event time), so what they print depends on their arguments alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from flowmesh_cli.progress import Change, Progress, RunHeader, StepRow

_STYLES = {
    "queued": "dim",
    "scheduled": "blue",
    "pending": "dim",
    "retrying": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "bold red",
    "skipped": "magenta",
    "cancelled": "yellow",
    "timed_out": "bold red",
}


def format_duration(value: timedelta | None) -> str:
    """``340ms``, ``12.3s``, ``2m05s``, ``1h02m``; empty for no duration."""
    if value is None:
        return ""
    ms = value / timedelta(milliseconds=1)
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def step_status(row: StepRow) -> str:
    """The status word shown: the step's, or ``retrying`` while a retry is waiting."""
    return "retrying" if row.retrying else row.status


# --- the live table ---


def board(progress: Progress, now: datetime, note: str = "") -> RenderableType:
    """The header line and the steps table."""
    return Group(header(progress.run, now, note), steps_table(progress.steps, now))


def header(run: RunHeader, now: datetime, note: str = "") -> Text:
    text = Text.assemble(("run ", "bold"), (run.run_id, "bold"))
    if run.workflow_id:
        text.append(f"  workflow {run.workflow_id} v{run.version}", style="dim")
    text.append("  ")
    text.append(run.status, style=_STYLES.get(run.status, ""))
    if took := format_duration(run.elapsed(now)):
        text.append(f"  {took}")
    if run.status == "scheduled" and run.run_at is not None:
        text.append(f"  starts at {run.run_at.isoformat()}", style="dim")
    if run.error:
        text.append(f"  {run.error}", style="red")
    if note:
        text.append(f"  ({note})", style="yellow")
    return text


def steps_table(rows: list[StepRow], now: datetime) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("step")
    table.add_column("status")
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("error", overflow="fold")
    for row in rows:
        status = step_status(row)
        attempts = "reused" if row.reused else (str(row.attempts) if row.attempts else "")
        table.add_row(
            row.node_id,
            Text(status, style=_STYLES.get(status, "")),
            attempts,
            format_duration(row.duration(now)),
            Text(_error_cell(row, now), style="red" if row.status == "failed" else "yellow"),
        )
    return table


def _error_cell(row: StepRow, now: datetime) -> str:
    error = row.error or ""
    if row.retrying and row.retry_at is not None:
        wait = format_duration(max(timedelta(0), row.retry_at - now))
        retry = f"attempt {row.attempts + 1} in {wait}" if wait != "0ms" else "retrying now"
        error = f"{error}; {retry}" if error else retry
    return error


# --- plain lines (no terminal) ---


def line(change: Change, now: datetime) -> str:
    """One line for one change of the run or of a step."""
    if isinstance(change, RunHeader):
        return run_line(change, now)
    return step_line(change, now)


def run_line(run: RunHeader, now: datetime) -> str:
    text = f"run {run.run_id} {run.status}"
    if run.status == "queued" and run.workflow_id:
        text += f" (workflow {run.workflow_id} v{run.version})"
    if run.status == "scheduled" and run.run_at is not None:
        text += f" to start at {run.run_at.isoformat()}"
    if run.finished:
        text += f" in {format_duration(run.elapsed(now))}"
    if run.error:
        text += f": {run.error}"
    return text


def step_line(row: StepRow, now: datetime) -> str:
    status = step_status(row)
    text = f"step {row.node_id} {status}"
    took = format_duration(row.duration(now))
    match status:
        case "running":
            text += f" (attempt {row.attempts})"
        case "succeeded" if row.reused:
            text += " (reused from the parent run)"
        case "succeeded":
            plural = "s" if row.attempts != 1 else ""
            text += f" in {took} ({row.attempts} attempt{plural})"
        case "retrying":
            text += f" after attempt {row.attempts}: {_error_cell(row, now)}"
        case "failed":
            text += f" after {took} (attempt {row.attempts}): {row.error}"
        case "cancelled" if took:
            text += f" after {took}"
    return text
