"""flowmesh_proto.catalog: the one table of node types and trigger kinds, and its readers."""

from __future__ import annotations

from flowmesh_executor.nodes.registry import shell_steps
from flowmesh_proto.catalog import NODE_KINDS, NODE_TYPES, SECRET_PARAMETERS, TRIGGER_KINDS
from flowmesh_proto.workflow import HttpParameters, Node, Trigger


def test_every_node_and_trigger_struct_has_one_row() -> None:
    assert set(NODE_TYPES.values()) == set(Node.__args__)  # type: ignore[attr-defined]
    assert {row.trigger for row in TRIGGER_KINDS.values()} == set(Trigger.__args__)  # type: ignore[attr-defined]


def test_the_table_says_what_the_validator_and_engine_said_before_it() -> None:
    instant = {name for name, kind in NODE_KINDS.items() if kind.runs == "instant"}
    assert instant == {"noop", "transform", "condition", "switch"}
    bare = {name: dict(kind.bare) for name, kind in NODE_KINDS.items() if kind.bare}
    assert bare == {
        "condition": {"expression": "bool"},
        "switch": {"expression": "case"},
        "map": {"items": "list"},
        "wait_for_event": {"match": "bool"},
    }
    literal = {name: kind.literal for name, kind in NODE_KINDS.items() if kind.literal}
    assert literal == {
        "switch": {"cases"},
        "http": {"connector"},
        "action": {"action", "connector", "version"},
        "map": {"workflow_id", "node", "concurrency"},
        "workflow": {"workflow_id", "version"},
        "task": {"queue", "timeout"},
        "wait_for_event": {"timeout"},
    }
    assert {"http": {"url", "path", "headers", "query", "body"}} == SECRET_PARAMETERS
    assert NODE_KINDS["http"].parameters is HttpParameters
    assert [name for name, kind in NODE_KINDS.items() if not kind.in_map] == ["map"]
    armed = {name: kind.armed_by for name, kind in TRIGGER_KINDS.items()}
    assert armed == {"cron": "scheduler", "event": "scheduler", "webhook": "gateway"}


def test_the_executor_has_a_step_for_each_step_type_and_none_other() -> None:
    steps = {name for name, kind in NODE_KINDS.items() if kind.runs == "step"}
    assert set(shell_steps()) == steps
