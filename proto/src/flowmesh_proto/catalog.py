"""What node types and trigger kinds exist, and what each is: the one table to extend. Pure.

The Structs of the language live in :mod:`flowmesh_proto.workflow` (a node's ``Node`` union
member with its parameters Struct, a trigger's ``Trigger`` member); this table says what
every other part needs to know about each, and they all read it:

- the registry's validator: the known type and kind names (``shape``), which parameters are
  bare CEL expressions and what type each must give, which are literals never templated,
  which may read ``secrets`` (``references``, ``secret_placement``), and which types a
  ``map`` may run per item (``nodes``);
- the executor: which types the engine evaluates itself (``instant``) and which are steps
  its shell runs (the step registry, ``nodes/registry.py``, must have one for each), and
  the parameters secrets are rendered into (``instant.render_parameters``);
- the scheduler: which trigger kinds it arms (the others arrive through the gateway);
- the docs test: every node type and trigger kind here has a valid example and a section
  in ``docs/workflow-language.md``.
- the catalog's entries (``GET /catalog``, :mod:`flowmesh_proto.entries`): one per node
  type here, with its parameters Struct's schema and docstring.

A ``Node`` or ``Trigger`` member without a row here (or a row without a member), a row
naming a parameter its Struct lacks, or a trigger kind a run's ``trigger.kind``
(:data:`flowmesh_proto.runs.TriggerKind`) cannot say, fails at import, so a new type
cannot be half added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import msgspec

from flowmesh_proto.runs import TriggerKind
from flowmesh_proto.workflow import (
    ActionNode,
    ConditionNode,
    CronTrigger,
    DelayNode,
    EventTrigger,
    HttpNode,
    MapNode,
    Node,
    NoopNode,
    PublishNode,
    SwitchNode,
    TaskNode,
    TransformNode,
    Trigger,
    WaitForEventNode,
    WebhookTrigger,
    WorkflowNode,
)

__all__ = [
    "NODE_KINDS",
    "NODE_TYPES",
    "SECRET_PARAMETERS",
    "TRIGGER_KINDS",
    "NodeSpec",
    "Slot",
    "TriggerSpec",
    "is_instant",
    "node_type",
    "trigger_kind",
]

#: What a bare expression must give: a boolean, a list, or a switch case (string or integer).
Slot = Literal["bool", "list", "case"]


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One node type: its ``Node`` Struct and how its parameters are read."""

    node: type[msgspec.Struct]
    #: ``instant``: evaluated by the engine itself, no ``step.started`` of its own;
    #: ``step``: run by the executor's shell (a step function in ``nodes/registry.py``).
    runs: Literal["instant", "step"]
    #: Parameters holding a bare CEL expression (not a template), with what it must give.
    bare: Mapping[str, Slot] = field(default_factory=dict)
    #: Variables a bare expression sees besides the node's (``event`` for a wait's match).
    bare_roots: frozenset[str] = frozenset()
    #: Parameters that are literal values, never templates.
    literal: frozenset[str] = frozenset()
    #: Parameters that may read ``secrets.<NAME>`` (DESIGN section 12): only those that make
    #: up a request the node sends. Anywhere else a secret could flow into an output, an
    #: event, a task or a log; the validator refuses it and the executor never resolves it.
    secrets: frozenset[str] = frozenset()
    #: Whether a ``map`` may run this type per item (a map cannot run a map in v1).
    in_map: bool = True

    @property
    def type(self) -> str:
        """The ``type`` tag (``http``, ``condition`` ...)."""
        return str(self.node.__struct_config__.tag)

    @property
    def parameters(self) -> Any:
        """The parameters Struct of this type."""
        return next(f.type for f in msgspec.structs.fields(self.node) if f.name == "parameters")


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """One trigger kind: its ``Trigger`` Struct and the service that arms it."""

    trigger: type[msgspec.Struct]
    #: ``scheduler``: armed from the trigger catalogue (cron times, event subscriptions);
    #: ``gateway``: fired by a request the gateway receives (a webhook's POST).
    armed_by: Literal["scheduler", "gateway"]

    @property
    def kind(self) -> str:
        return str(self.trigger.__struct_config__.tag)


_NODES = (
    NodeSpec(NoopNode, runs="instant"),
    NodeSpec(TransformNode, runs="instant"),
    NodeSpec(ConditionNode, runs="instant", bare={"expression": "bool"}),
    NodeSpec(SwitchNode, runs="instant", bare={"expression": "case"}, literal=frozenset({"cases"})),
    NodeSpec(DelayNode, runs="step"),
    NodeSpec(
        HttpNode,
        runs="step",
        literal=frozenset({"connector"}),
        secrets=frozenset({"url", "path", "headers", "query", "body"}),
    ),
    NodeSpec(ActionNode, runs="step", literal=frozenset({"action", "connector", "version"})),
    NodeSpec(
        MapNode,
        runs="step",
        bare={"items": "list"},
        literal=frozenset({"workflow_id", "node", "concurrency"}),
        in_map=False,
    ),
    NodeSpec(WorkflowNode, runs="step", literal=frozenset({"workflow_id", "version"})),
    NodeSpec(TaskNode, runs="step", literal=frozenset({"queue", "timeout"})),
    NodeSpec(PublishNode, runs="step"),
    NodeSpec(
        WaitForEventNode,
        runs="step",
        bare={"match": "bool"},
        bare_roots=frozenset({"event"}),
        literal=frozenset({"timeout"}),
    ),
)

_TRIGGERS = (
    TriggerSpec(CronTrigger, armed_by="scheduler"),
    TriggerSpec(EventTrigger, armed_by="scheduler"),
    TriggerSpec(WebhookTrigger, armed_by="gateway"),
)

#: Every node type by its ``type`` tag, in the order the docs list them.
NODE_KINDS: Mapping[str, NodeSpec] = {row.type: row for row in _NODES}
#: Every trigger kind by its ``kind`` tag.
TRIGGER_KINDS: Mapping[str, TriggerSpec] = {row.kind: row for row in _TRIGGERS}
#: Node type -> its ``Node`` Struct.
NODE_TYPES: Mapping[str, type[msgspec.Struct]] = {t: row.node for t, row in NODE_KINDS.items()}
#: Node type -> the parameters where ``secrets.<NAME>`` may be read (types with none left out).
SECRET_PARAMETERS: Mapping[str, frozenset[str]] = {
    t: row.secrets for t, row in NODE_KINDS.items() if row.secrets
}


def node_type(node: Node) -> str:
    """The ``type`` tag of a decoded node."""
    return str(node.__struct_config__.tag)


def trigger_kind(trigger: Trigger) -> str:
    """The ``kind`` tag of a decoded trigger."""
    return str(trigger.__struct_config__.tag)


def is_instant(node: Node) -> bool:
    """Whether the engine evaluates ``node`` itself (no step of its own)."""
    return NODE_KINDS[node_type(node)].runs == "instant"


def _check() -> None:
    """Every ``Node`` and ``Trigger`` member has one row, and each row names real parameters."""
    nodes: list[type[msgspec.Struct]] = [row.node for row in _NODES]
    triggers: list[type[msgspec.Struct]] = [row.trigger for row in _TRIGGERS]
    for listed, union in ((nodes, Node), (triggers, Trigger)):
        if set(get_args(union)) != set(listed) or len(listed) != len(set(listed)):
            raise TypeError(f"flowmesh_proto.catalog does not list each of {union} once")
    unnamed = set(TRIGGER_KINDS) - set(get_args(TriggerKind))
    if unnamed:
        raise TypeError(f"flowmesh_proto.runs.TriggerKind does not name {sorted(unnamed)}")
    for row in _NODES:
        names = {f.encode_name for f in msgspec.structs.fields(row.parameters)}
        named = set(row.bare) | row.literal | row.secrets
        if not named <= names:
            raise TypeError(f"{row.type}: no parameters {sorted(named - names)}")


_check()
