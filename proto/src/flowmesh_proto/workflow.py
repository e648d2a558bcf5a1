"""The workflow language (DESIGN section 4) as msgspec Structs.

A definition is JSON or YAML; decoding it with :data:`definition_decoder` checks its shape.
The validator in the registry checks everything shape cannot say (graph, expressions,
references, limits) and reports every problem at once.

Templates (``{{ expr }}``) are allowed in any string value of ``parameters``; parameter
fields that must be a fixed kind of thing (a method, a duration) are still strings here
and are checked by the validator when they hold no template.

What each node type and trigger kind is (instantaneous or a step, which parameters are bare
expressions or literals, where secrets may be read, which service arms a trigger) is said
once, in :mod:`flowmesh_proto.catalog`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

import msgspec

Category = Literal[
    "automation",
    "integration",
    "business-logic",
    "data-transformation",
    "notification",
    "approval",
    "other",
]

CatchUp = Literal["skip", "once", "all"]
OnLimit = Literal["queue", "cancel_newest", "cancel_in_progress"]
Backoff = Literal["fixed", "linear", "exponential"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
HTTP_METHODS: tuple[str, ...] = HttpMethod.__args__  # type: ignore[attr-defined]


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every language Struct: immutable, keyword-only, unknown fields refused."""


# --- policies -----------------------------------------------------------------------------


class RetryPolicy(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    max_attempts: int = 1
    backoff: Backoff = "exponential"
    initial: timedelta = timedelta(milliseconds=200)
    max: timedelta = timedelta(seconds=30)
    jitter: bool = True


class Concurrency(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    key: str
    limit: int = 1
    on_limit: OnLimit = "queue"


# --- triggers -----------------------------------------------------------------------------


class _TriggerBase(_Strict, frozen=True, kw_only=True, tag_field="kind", omit_defaults=True):
    id: str
    enabled: bool = True


class CronTrigger(_TriggerBase, frozen=True, kw_only=True, tag="cron"):
    cron: str
    timezone: str = "UTC"
    catch_up: CatchUp = "skip"


class EventTrigger(_TriggerBase, frozen=True, kw_only=True, tag="event"):
    event: str
    filter: str | None = None


class WebhookTrigger(_TriggerBase, frozen=True, kw_only=True, tag="webhook"):
    pass


Trigger = CronTrigger | EventTrigger | WebhookTrigger


# --- node parameters (one Struct per node type) ----------------------------------------
# Each docstring and each field's description are the catalog's (flowmesh_proto.entries).


def _about(description: str) -> msgspec.Meta:
    """A parameter's description, for its JSON Schema (the catalog, docs/actions.md)."""
    return msgspec.Meta(description=description)


class NoopParameters(_Strict, frozen=True, kw_only=True):
    """Does nothing and outputs null: a join point or a placeholder."""


class TransformParameters(_Strict, frozen=True, kw_only=True):
    """Outputs ``output`` with every template in it rendered: reshapes data, no I/O."""

    output: Annotated[Any, _about("Any JSON; its strings may be templates.")]


class ConditionParameters(_Strict, frozen=True, kw_only=True):
    """Evaluates a CEL boolean ``expression``; its ``true`` or ``false`` edges are followed."""

    expression: Annotated[str, _about("A bare CEL expression giving a boolean.")]


class SwitchParameters(_Strict, frozen=True, kw_only=True):
    """Evaluates a CEL ``expression`` to one of ``cases`` (else ``default``); follows that edge."""

    expression: Annotated[str, _about("A bare CEL expression giving a string or an integer.")]
    cases: Annotated[list[str], _about("The case names edges may choose (`when`), literal.")]


class DelayParameters(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    """Waits for a ``duration`` (ISO 8601) or ``until`` a time (RFC 3339); the run parks."""

    duration: Annotated[str | None, _about("An ISO 8601 duration (PT30S), or a template.")] = None
    until: Annotated[str | None, _about("An RFC 3339 time, or a template.")] = None


class HttpParameters(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    """Sends an HTTP request and outputs the answer; ``url`` (or ``path``), ``headers``,
    ``query`` and ``body`` may read the tenant's secrets (``{{ secrets.NAME }}``)."""

    url: Annotated[
        str | None, _about("An absolute http(s) URL (or ``connector`` and ``path``).")
    ] = None
    connector: Annotated[
        str | None,
        _about("A connector of the tenant, literal: its base URL, headers and auth are used."),
    ] = None
    path: Annotated[
        str | None,
        _about("With ``connector``: joined to its base URL; starts with '/', stays under it."),
    ] = None
    method: Annotated[str, _about(f"One of {', '.join(HTTP_METHODS)}.")] = "GET"
    headers: Annotated[dict[str, str], _about("Request headers.")] = {}
    query: Annotated[dict[str, str], _about("Query parameters added to the URL.")] = {}
    body: Annotated[Any, _about("Sent as JSON; a string as text; nothing when null.")] = None
    expect_status: Annotated[
        list[int], _about("The statuses that succeed; empty means 200-299.")
    ] = []


class StepTemplate(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    """The node a ``map`` runs per item: a type and its parameters, checked per type."""

    type: Annotated[str, _about("A node type (not ``map``).")]
    parameters: Annotated[
        dict[str, Any], _about("Its parameters; they see ``item``, ``index``.")
    ] = {}


class MapParameters(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    """Runs a node template or a workflow once per item of ``items``; outputs theirs in order."""

    items: Annotated[str, _about("A bare CEL expression giving a list.")]
    node: Annotated[StepTemplate | None, _about("The node run per item (or ``workflow_id``).")] = (
        None
    )
    workflow_id: Annotated[str | None, _about("The workflow run per item (or ``node``).")] = None
    concurrency: Annotated[int, _about("How many items run at once.")] = 10


class WorkflowParameters(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    """Runs another workflow of the tenant as a child run and outputs the child's output."""

    workflow_id: Annotated[str, _about("The child workflow's id, literal.")]
    version: Annotated[int | None, _about("A version of it; its current one when null.")] = None
    input: Annotated[Any, _about("The child run's trigger data.")] = None


class TaskParameters(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    """Hands ``input`` to an external worker serving ``queue`` and outputs the worker's result."""

    queue: Annotated[str, _about("The queue a worker serves, literal.")]
    input: Annotated[Any, _about("What the worker receives.")] = None
    timeout: Annotated[timedelta | None, _about("How long to await the result.")] = None


class PublishParameters(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    """Publishes an event of type ``event`` with ``data`` to the tenant's events."""

    event: Annotated[str, _about("The event's type.")]
    data: Annotated[Any, _about("The event's data.")] = None


class WaitForEventParameters(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    """Waits for the first event of type ``event`` for which ``match`` holds and outputs it."""

    event: Annotated[str, _about("The event type awaited.")]
    match: Annotated[
        str | None, _about("A bare CEL expression over ``event`` giving a boolean.")
    ] = None
    timeout: Annotated[timedelta | None, _about("How long to wait; forever when null.")] = None


class ActionParameters(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    """Runs an action of the catalog (built-in or the tenant's) through a connector: its
    ``input``, checked against the action's input schema, becomes the action's HTTP request."""

    action: Annotated[str, _about("The action's name (slack.post_message), literal.")]
    connector: Annotated[
        str, _about("A connector of the tenant, literal: the action's base URL and auth.")
    ]
    version: Annotated[
        int | None, _about("A version of a tenant's action; its current one when null.")
    ] = None
    input: Annotated[
        dict[str, Any], _about("The action's input; its strings may be templates (no secrets).")
    ] = {}


# --- nodes ----------------------------------------------------------------------------


class _NodeBase(_Strict, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    id: str
    name: str | None = None
    description: str | None = None
    retry: RetryPolicy | None = None
    timeout: timedelta | None = None
    on_error: str = "fail"  # fail | continue | fallback:<node id>


class NoopNode(_NodeBase, frozen=True, kw_only=True, tag="noop"):
    parameters: NoopParameters = NoopParameters()


class TransformNode(_NodeBase, frozen=True, kw_only=True, tag="transform"):
    parameters: TransformParameters


class ConditionNode(_NodeBase, frozen=True, kw_only=True, tag="condition"):
    parameters: ConditionParameters


class SwitchNode(_NodeBase, frozen=True, kw_only=True, tag="switch"):
    parameters: SwitchParameters


class DelayNode(_NodeBase, frozen=True, kw_only=True, tag="delay"):
    parameters: DelayParameters


class HttpNode(_NodeBase, frozen=True, kw_only=True, tag="http"):
    parameters: HttpParameters


class ActionNode(_NodeBase, frozen=True, kw_only=True, tag="action"):
    parameters: ActionParameters


class MapNode(_NodeBase, frozen=True, kw_only=True, tag="map"):
    parameters: MapParameters


class WorkflowNode(_NodeBase, frozen=True, kw_only=True, tag="workflow"):
    parameters: WorkflowParameters


class TaskNode(_NodeBase, frozen=True, kw_only=True, tag="task"):
    parameters: TaskParameters


class PublishNode(_NodeBase, frozen=True, kw_only=True, tag="publish"):
    parameters: PublishParameters


class WaitForEventNode(_NodeBase, frozen=True, kw_only=True, tag="wait_for_event"):
    parameters: WaitForEventParameters


Node = (
    NoopNode
    | TransformNode
    | ConditionNode
    | SwitchNode
    | DelayNode
    | HttpNode
    | ActionNode
    | MapNode
    | WorkflowNode
    | TaskNode
    | PublishNode
    | WaitForEventNode
)

#: Where ``secrets.<NAME>`` may be read is said per node type in
#: :mod:`flowmesh_proto.catalog` (``SECRET_PARAMETERS``: an http node's request). Even
#: there, an expression that reads a secret reads it as it is (``secrets.NAME``, in a
#: template such as ``"Bearer {{ secrets.NAME }}"``): a value computed from it
#: (``bytes(...)``, ``size(...)``, a comparison) could come back in an error message (a URL
#: that cannot be reached) where exact-value redaction would not recognise it.
_PLAIN_SECRET_READ = re.compile(r"\s*secrets\s*\.\s*[A-Za-z_][A-Za-z0-9_]*\s*")


def is_plain_secret_read(source: str) -> bool:
    """Whether a CEL expression is nothing but one ``secrets.NAME``."""
    return _PLAIN_SECRET_READ.fullmatch(source) is not None


class Edge(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    from_: str = msgspec.field(name="from")
    to: str
    when: str | None = None  # "true"/"false" after a condition, a case or "default" after a switch


class Definition(_Strict, frozen=True, kw_only=True, omit_defaults=True):
    """A whole workflow document: what export writes and import reads."""

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "name",
            "description",
            "category",
            "tags",
            "enabled",
            "input_schema",
            "vars",
            "triggers",
            "concurrency",
            "timeout",
            "nodes",
            "edges",
            "output",
        }
    )

    name: str
    nodes: list[Node]
    description: str = ""
    category: Category = "other"
    tags: list[str] = []
    enabled: bool = True
    input_schema: dict[str, Any] | None = None
    vars: dict[str, Any] = {}
    triggers: list[Trigger] = []
    concurrency: Concurrency | None = None
    timeout: timedelta | None = None
    edges: list[Edge] = []
    output: str | None = None


definition_decoder = msgspec.json.Decoder(Definition)
encoder = msgspec.json.Encoder()


def definition_to_builtins(definition: Definition) -> dict[str, Any]:
    """The definition as plain JSON-compatible data (durations as ISO 8601 strings)."""
    data: dict[str, Any] = msgspec.to_builtins(definition)
    return data


def definition_from_builtins(data: Any) -> Definition:
    """Convert plain data (decoded JSON or YAML) to a Definition; raises msgspec.ValidationError."""
    return msgspec.convert(data, Definition, strict=True)
