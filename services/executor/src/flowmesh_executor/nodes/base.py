"""What a step gets from the shell, and how it reports a failure.

A step function is ``async def run(call: StepCall, services: StepServices) -> Any``: it
returns the step's output (JSON-compatible) or raises :class:`StepError`. It is cancelled
when its attempt's deadline passes, when the run is cancelled, or when the executor stops;
it must hold nothing that outlives it. Steps are at-least-once: ``call.idempotency_key``
(``<run_id>:<node_id>``) is the same for every execution of one step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp
from nats.aio.client import Client
from nats.js import JetStreamContext

from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_proto.workflow import Definition, Node


class StepError(Exception):
    """A step failed; ``error_class`` names the kind (``HttpStatus``, ``TaskError`` ...)."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


@dataclass(frozen=True, slots=True)
class StepCall:
    """One attempt of one step."""

    tenant: str
    run_id: str
    workflow_id: str
    version: int
    node: Node
    attempt: int
    idempotency_key: str
    #: The node's parameters with every template rendered (map: all but ``node``).
    parameters: Mapping[str, Any]
    #: The CEL variables the parameters were rendered with (map renders per item with them).
    variables: Mapping[str, Any]
    started_at: datetime
    deadline: datetime | None
    #: Secret values, to redact from anything the step reports.
    secrets: Mapping[str, str]
    traceparent: str | None = None


class Waits(Protocol):
    """Long waits (delay nodes). In process for now; the scheduler's durable timers will
    let the executor ack and be asked again instead (DESIGN section 5)."""

    async def sleep_until(self, at: datetime) -> None: ...


class ChildRuns(Protocol):
    """Starting a run of another workflow and awaiting its result (workflow and map steps)."""

    async def run_child(
        self,
        call: StepCall,
        workflow_id: str,
        version: int | None,
        input: Any,
        key: str,
    ) -> Any: ...


class DefinitionSource(Protocol):
    async def get(
        self, tenant: str, workflow_id: str, version: int | None
    ) -> tuple[int, Definition]: ...


@dataclass(slots=True)
class StepServices:
    """What steps may use: shared by every run of one executor process."""

    nc: Client
    js: JetStreamContext
    subjects: Subjects
    streams: StreamNames
    settings: ExecutorSettings
    http: aiohttp.ClientSession
    waits: Waits
    children: ChildRuns
    definitions: DefinitionSource


Step = Callable[[StepCall, StepServices], Awaitable[Any]]
