"""What a step gets from the shell, and how it reports a failure.

A step function is ``async def run(call: StepCall, services: StepServices) -> Any``: it
returns the step's output (JSON-compatible) or raises :class:`StepError`. It is cancelled
when its attempt's deadline passes, when the run is cancelled, or when the executor stops;
it must hold nothing that outlives it. Steps are at-least-once: ``call.idempotency_key``
(``<run_id>:<node_id>``) is the same for every execution of one step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import aiohttp
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from flowmesh_executor.nodes.tokens import TokenCache
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto.actions import Action, ActionKey
from flowmesh_proto.connectors import Connector
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_proto.workflow import Definition, Node
from flowmesh_shared.event_ids import EventIds
from flowmesh_shared.expressions import DEFAULT_BUDGET
from flowmesh_shared.json_schemas import CompiledSchemas
from flowmesh_shared.turns import Turns


class StepError(Exception):
    """A step failed; ``error_class`` names the kind (``HttpStatus``, ``TaskError`` ...)."""

    def __init__(self, error_class: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        #: The HTTP status of an ``HttpStatus`` failure (what the server answered).
        self.status = status


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
    #: The CEL variables the parameters were rendered with (map renders per item with them);
    #: ``secrets`` is empty there (only an http request's parameters see secrets).
    variables: Mapping[str, Any]
    started_at: datetime
    deadline: datetime | None
    #: Secret values, to redact from anything the step reports (and for a map to render
    #: its per-item http requests with, :func:`flowmesh_executor.instant.render_parameters`).
    secrets: Mapping[str, str]
    traceparent: str | None = None
    #: The connectors the run's http nodes name (:attr:`.actions.RunContext.connectors`).
    connectors: Mapping[str, Connector] = field(default_factory=dict)
    #: The actions the run's action nodes name (:attr:`.actions.RunContext.actions`).
    actions: Mapping[ActionKey, Action] = field(default_factory=dict)
    #: Cost units one evaluation's expressions may spend (a map: each item's).
    expression_budget: float = DEFAULT_BUDGET
    #: A step about to wait calls this first (until when: None for no end; for an event
    #: wait, what would end it): a run whose running steps all wait long is parked (a
    #: durable timer, or the scheduler on a matching event, asks for it again; the lease is
    #: given back).
    long_wait: Callable[[datetime | None, EventInterest | None], None] | None = None


class EventInterest(NamedTuple):
    """What ends a ``wait_for_event`` step: an event of type ``event`` for which ``match``
    holds, evaluated over ``variables`` (the run's variables it reads) and ``event``."""

    event: str
    match: str | None
    variables: dict[str, Any]


class Waits(Protocol):
    """Waiting until a time (delay nodes), in process. A wait longer than the executor's
    ``park_after`` parks the run instead (:attr:`StepCall.long_wait`): the run is given
    back and a durable timer asks for it again when it is due (DESIGN section 5)."""

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
    #: Which stored copy of a tenant's event counts (``publish``, ``wait_for_event``).
    event_ids: EventIds
    #: The bucket of parked ``wait_for_event`` steps (None: such steps are not parked).
    event_waits: KeyValue | None = None
    #: Turns at the event loop for expression work, shared by every run of the process.
    turns: Turns = field(default_factory=lambda: Turns(DEFAULT_BUDGET))
    #: OAuth2 tokens connectors got, shared by every run of the process.
    tokens: TokenCache = field(default_factory=TokenCache)
    #: Actions' input schemas, compiled once per action version, shared by every run.
    schemas: CompiledSchemas = field(default_factory=CompiledSchemas)


Step = Callable[[StepCall, StepServices], Awaitable[Any]]
