"""What every example shares: where the stack is, the gateway's HTTP API, following a run.

The examples talk to the gateway as any client would, over HTTP with the API key that
``make dev`` wrote to ``$FLOWMESH_HOME/dev.json`` (``FLOWMESH_HOME`` defaults to
``.flowmesh``, relative to the working directory). A run is followed on its Server-Sent
Events stream (``GET /api/v1/<tenant>/runs/<run_id>/events``) and printed one line per
change, the way ``flowmesh watch --plain`` prints it (the same code does it).

Anything that stops an example is an :class:`ExampleError` whose message says what to do;
``run.py`` prints it on one line, without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

import msgspec
import yaml

from flowmesh_cli.progress import Change, Progress, StepRow
from flowmesh_cli.watch import PlainLines, watch
from flowmesh_client import Client, ConnectionFailed, FlowmeshError
from flowmesh_proto.runs import TERMINAL_RUN_STATUSES, Run

DEFAULT_HOME = ".flowmesh"


class ExampleError(Exception):
    """The example could not run."""


def say(text: str = "", out: TextIO = sys.stdout) -> None:
    out.write(text + "\n")
    out.flush()


def show(label: str, value: Any) -> None:
    """``label:`` then ``value`` as indented JSON."""
    say(f"{label}:")
    say("  " + json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  "))


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- where the stack is -------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """The parts of ``$FLOWMESH_HOME/dev.json`` the examples use."""

    gateway_url: str
    tenant: str
    api_key: str
    nats_url: str
    scheduler_health_url: str

    @classmethod
    def load(cls, env: Mapping[str, str], cwd: Path) -> Stack:
        path = cwd / (env.get("FLOWMESH_HOME") or DEFAULT_HOME) / "dev.json"
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ExampleError(
                f"{path} does not exist: start the stack with `make dev` first (it writes "
                "that file), or set FLOWMESH_HOME to the folder of a running stack"
            ) from None
        except OSError as exc:
            raise ExampleError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ExampleError(f"{path} is not JSON ({exc}): run `make dev` again") from None
        fields = ("gateway_url", "tenant", "api_key", "nats_url", "scheduler_health_url")
        missing = [f for f in fields if not isinstance(saved, dict) or not saved.get(f)]
        if missing:
            raise ExampleError(f"{path} has no {', '.join(missing)}: run `make dev` again")
        return cls(**{f: str(saved[f]).rstrip("/") for f in fields})


def workflow(path: Path, **vars: Any) -> dict[str, Any]:
    """The workflow document at ``path`` (YAML or JSON), ``vars`` set over its own."""
    try:
        definition = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ExampleError(f"cannot read the workflow {path}: {exc}") from None
    definition["vars"] = {**definition.get("vars", {}), **vars}
    return dict(definition)


# --- the gateway's API (through flowmesh-client) ---------------------------------------


class Flowmesh:
    """The calls the examples make, as the tenant of ``stack``, with ``client``."""

    def __init__(self, client: Client, stack: Stack) -> None:
        self.client = client
        self.stack = stack

    async def call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 202), **kwargs: Any
    ) -> tuple[int, Any]:
        """``method`` on ``/api/v1/<tenant>/<path>``: (status, decoded JSON body or None)."""
        try:
            answer = await self.client.transport.request(
                method, self.client.target.path(*path.split("/")), json=kwargs.get("json")
            )
        except FlowmeshError as exc:
            if exc.status in ok:
                return exc.status or 0, {"code": exc.code, "detail": exc.detail}
            raise failed(f"{method} {path}", exc) from None
        return answer.status, json.loads(answer.body) if answer.body else None

    async def install(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        """Apply the workflow by name: created, or a new version only when it changed."""
        try:
            workflow = await self.client.workflows.apply(definition)
        except FlowmeshError as exc:
            raise failed(f"applying workflow {definition['name']!r}", exc) from None
        say(f"applied workflow {workflow.name!r} (id {workflow.id}; version {workflow.version})")
        return cast(dict[str, Any], msgspec.to_builtins(workflow))

    async def execute(self, workflow: Mapping[str, Any], input: Any) -> str:
        """Start a run of ``workflow``; its id."""
        try:
            accepted = await self.client.workflows.execute(workflow["id"], input)
        except FlowmeshError as exc:
            raise failed(f"executing {workflow['name']!r}", exc) from None
        say(
            f"started run {accepted.id if isinstance(accepted, Run) else accepted.run_id} "
            f"of {workflow['name']!r}"
        )
        return accepted.id if isinstance(accepted, Run) else accepted.run_id

    async def publish(self, event_type: str, data: Any, event_id: str | None = None) -> str:
        """``POST /events``: the event's id."""
        try:
            accepted = await self.client.events.publish(
                event_type, data, id=event_id, source="examples"
            )
        except FlowmeshError as exc:
            raise failed(f"publishing {event_type}", exc) from None
        say(f"published event {event_type} (id {accepted.id}): {json.dumps(data)}")
        return accepted.id

    async def run(self, run_id: str) -> dict[str, Any]:
        try:
            run = await self.client.runs.get(run_id)
        except FlowmeshError as exc:
            raise failed(f"reading run {run_id}", exc) from None
        return cast(dict[str, Any], msgspec.to_builtins(run))

    async def follow(
        self, run_id: str, when_running: Mapping[str, Callable[[], Awaitable[Any]]] | None = None
    ) -> dict[str, Any]:
        """Print the run's steps as they change until it ends; the finished run resource.

        ``when_running[node_id]`` is awaited (once, alongside) when that step starts.
        """
        say(f"  watch it live: uv run flowmesh watch {run_id}")
        reactions = _Reactions(when_running or {})

        def display_for(progress: Progress) -> _Lines:
            return _Lines(progress, reactions)

        try:
            await watch(self.client, run_id, display_for)
        except FlowmeshError as exc:
            raise failed("", exc) from None
        finally:
            await reactions.settle()
        run = await self.until(
            lambda: self.run(run_id), lambda r: r["status"] in TERMINAL_RUN_STATUSES
        )
        say(f"run {run_id} {run['status']}")
        if run.get("error"):
            show("error", run["error"])
        show("output", run.get("output"))
        return dict(run)

    @contextlib.asynccontextmanager
    async def new_runs(self, workflow: Mapping[str, Any]) -> AsyncIterator[RunsSeen]:
        """While open, the ids of the runs of ``workflow`` that start (from any trigger),
        read from the tenant's event stream ``GET /events/stream?workflow_id=``."""
        seen = RunsSeen()
        reader = asyncio.create_task(seen.read(self.client, workflow["id"]))
        try:
            yield seen
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def scheduler_metric(self, name: str) -> float | None:
        """A sample of the scheduler's Prometheus metrics (``make dev`` runs one scheduler)."""
        url = f"{self.stack.scheduler_health_url}/metrics"
        try:
            text = await asyncio.to_thread(_read_url, url)
        except OSError:
            return None
        for line in text.splitlines():
            metric, _, value = line.partition(" ")
            if metric == name:
                return float(value)
        return None

    @staticmethod
    async def until(
        fetch: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], within: float = 10.0
    ) -> Any:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            value = await fetch()
            if done(value) or asyncio.get_running_loop().time() > deadline:
                return value
            await asyncio.sleep(0.2)


def failed(what: str, exc: FlowmeshError) -> ExampleError:
    """The example's error for a refused or failed call ``what``."""
    hint = ": is `make dev` running?" if isinstance(exc, ConnectionFailed) else ""
    return ExampleError(f"{what}{': ' if what else ''}{exc.message}{hint}")


def _read_url(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - the stack's own URL
        return str(resp.read().decode())


class RunsSeen:
    """Run ids in the order their first event arrived on a tenant stream."""

    def __init__(self) -> None:
        self._ids: asyncio.Queue[str] = asyncio.Queue()
        self._known: set[str] = set()

    async def read(self, client: Client, workflow_id: str) -> None:
        async for event in client.events.stream(workflow_id=workflow_id):
            if event.run_id not in self._known:
                self._known.add(event.run_id)
                self._ids.put_nowait(event.run_id)

    async def next(self, within: float, waiting_for: str) -> str:
        try:
            return await asyncio.wait_for(self._ids.get(), within)
        except TimeoutError:
            raise ExampleError(f"no run started within {within:g} s ({waiting_for})") from None


# --- following a run ----------------------------------------------------------------------


class _Reactions:
    """Coroutines to start when a step starts running, each once."""

    def __init__(self, when_running: Mapping[str, Callable[[], Awaitable[Any]]]) -> None:
        self._pending = dict(when_running)
        self._tasks: list[asyncio.Task[Any]] = []

    def changed(self, changes: list[Change]) -> None:
        for change in changes:
            if isinstance(change, StepRow) and change.status == "running":
                react = self._pending.pop(change.node_id, None)
                if react is not None:
                    self._tasks.append(asyncio.ensure_future(react()))

    async def settle(self) -> None:
        await asyncio.gather(*self._tasks)


class _Lines(PlainLines):
    """``flowmesh watch --plain``'s lines, indented, and the reactions to steps starting."""

    def __init__(self, progress: Progress, reactions: _Reactions) -> None:
        super().__init__(progress, cast(TextIO, _Indented(sys.stdout)), sys.stderr)
        self._reactions = reactions

    def changed(self, changes: list[Change]) -> None:
        super().changed(changes)
        self._reactions.changed(changes)


class _Indented:
    """A text stream that indents each line written to it (PlainLines writes whole lines)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, text: str) -> int:
        return self._out.write("  " + text)

    def flush(self) -> None:
        self._out.flush()
