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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

import aiohttp
import yaml

from flowmesh_cli.config import Target
from flowmesh_cli.errors import CliError
from flowmesh_cli.gateway import Gateway, StreamPolicy
from flowmesh_cli.progress import Change, Progress, StepRow
from flowmesh_cli.sse import SseParser
from flowmesh_cli.watch import PlainLines, watch
from flowmesh_proto.runs import TERMINAL_RUN_STATUSES, run_event_decoder

DEFAULT_HOME = ".flowmesh"
_TIMEOUT = aiohttp.ClientTimeout(total=30)


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


# --- the gateway's API --------------------------------------------------------------------


class Flowmesh:
    """The calls the examples make, as the tenant of ``stack``, over ``session``."""

    def __init__(self, session: aiohttp.ClientSession, stack: Stack) -> None:
        self.session = session
        self.stack = stack
        self._auth = {"Authorization": f"Bearer {stack.api_key}"}

    def url(self, *parts: str) -> str:
        return "/".join([self.stack.gateway_url, "api/v1", self.stack.tenant, *parts])

    async def call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 202), **kwargs: Any
    ) -> tuple[int, Any]:
        """``method`` on ``/api/v1/<tenant>/<path>``: (status, decoded JSON body or None)."""
        headers = {**self._auth, **kwargs.pop("headers", {})}
        try:
            async with self.session.request(
                method, self.url(path), headers=headers, timeout=_TIMEOUT, **kwargs
            ) as resp:
                body = await resp.json(content_type=None) if resp.content_length != 0 else None
                status = resp.status
        except aiohttp.ClientConnectorError:
            raise ExampleError(
                f"cannot reach the gateway at {self.stack.gateway_url}: is `make dev` running?"
            ) from None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ExampleError(f"{method} {path} failed: {exc!r}") from None
        if status not in ok:
            raise ExampleError(f"{method} {path} answered {_problem_text(status, body)}")
        return status, body

    async def install(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        """Import the workflow; if one of that name exists, apply it by name instead (a new
        version only when the definition changed). The workflow resource."""
        name = definition["name"]
        status, workflow = await self.call(
            "POST", "workflows/import", json=definition, ok=(201, 409)
        )
        if status == 201:
            say(f"imported workflow {name!r} (id {workflow['id']}, version 1)")
            return dict(workflow)
        if workflow.get("code") != "WORKFLOW_NAME_TAKEN":
            raise ExampleError(f"POST workflows/import answered {_problem_text(status, workflow)}")
        status, workflow = await self.call("PUT", f"workflows/by-name/{name}", json=definition)
        changed = "created" if status == 201 else f"current version {workflow['version']}"
        say(f"applied workflow {name!r} (id {workflow['id']}; {changed})")
        return dict(workflow)

    async def execute(self, workflow: Mapping[str, Any], input: Any) -> str:
        """Start a run of ``workflow``; its id."""
        _, accepted = await self.call(
            "POST", f"workflows/{workflow['id']}/execute", json={"input": input}
        )
        run_id = str(accepted["run_id"])
        say(f"started run {run_id} of {workflow['name']!r}")
        return run_id

    async def publish(self, event_type: str, data: Any, event_id: str | None = None) -> str:
        """``POST /events``: the event's id."""
        body: dict[str, Any] = {"type": event_type, "source": "examples", "data": data}
        if event_id:
            body["id"] = event_id
        _, accepted = await self.call("POST", "events", json=body)
        say(f"published event {event_type} (id {accepted['id']}): {json.dumps(data)}")
        return str(accepted["id"])

    async def run(self, run_id: str) -> dict[str, Any]:
        _, run = await self.call("GET", f"runs/{run_id}")
        return dict(run)

    async def follow(
        self, run_id: str, when_running: Mapping[str, Callable[[], Awaitable[Any]]] | None = None
    ) -> dict[str, Any]:
        """Print the run's steps as they change until it ends; the finished run resource.

        ``when_running[node_id]`` is awaited (once, alongside) when that step starts.
        """
        say(f"  watch it live: uv run flowmesh watch {run_id}")
        stream = self.url("runs", run_id, "events")
        say(f"  or its events: curl -N -H 'Authorization: Bearer $KEY' {stream}")
        reactions = _Reactions(when_running or {})
        target = Target(
            url=self.stack.gateway_url, tenant=self.stack.tenant, api_key=self.stack.api_key
        )

        def display_for(progress: Progress) -> _Lines:
            return _Lines(progress, reactions)

        try:
            await watch(Gateway(self.session, target), run_id, StreamPolicy(), display_for)
        except CliError as exc:
            raise ExampleError(exc.message) from None
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
        try:
            resp = await self.session.get(
                self.url("events", "stream"),
                params={"workflow_id": workflow["id"]},
                headers={**self._auth, "Accept": "text/event-stream"},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        except aiohttp.ClientError as exc:
            raise ExampleError(f"cannot open the tenant's event stream: {exc!r}") from None
        if resp.status != 200:
            resp.release()
            raise ExampleError(f"the tenant's event stream answered {resp.status}")
        reader = asyncio.create_task(seen.read(resp))
        try:
            yield seen
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            resp.close()

    async def scheduler_metric(self, name: str) -> float | None:
        """A sample of the scheduler's Prometheus metrics (``make dev`` runs one scheduler)."""
        url = f"{self.stack.scheduler_health_url}/metrics"
        try:
            async with self.session.get(url, timeout=_TIMEOUT) as resp:
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError):
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


def _problem_text(status: int, body: Any) -> str:
    """``<status> <code>: <detail>`` and each problem's path and message, on one line."""
    problem = body if isinstance(body, dict) else {}
    said = f"{status} {problem.get('code', '')}".strip()
    detail = problem.get("detail") or problem.get("title")
    said += f": {detail}" if detail else ""
    for error in problem.get("errors") or []:
        said += f"; {error.get('path')}: {error.get('message')}"
    return said


class RunsSeen:
    """Run ids in the order their first event arrived on a tenant stream."""

    def __init__(self) -> None:
        self._ids: asyncio.Queue[str] = asyncio.Queue()
        self._known: set[str] = set()

    async def read(self, resp: aiohttp.ClientResponse) -> None:
        parser = SseParser()
        async for chunk in resp.content.iter_any():
            for message in parser.feed(chunk):
                with contextlib.suppress(ValueError):
                    run_id = run_event_decoder.decode(message.data).run_id
                    if run_id not in self._known:
                        self._known.add(run_id)
                        self._ids.put_nowait(run_id)

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
