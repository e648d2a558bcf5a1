"""Action nodes naming the tenant's actions, judged by the pure validator: the bound on how
many one workflow may name, the order the shell loads them in, schemas told apart by content."""

from __future__ import annotations

from typing import Any

import msgspec

from flowmesh_proto.actions import Action, ActionKey, ActionSpec
from flowmesh_proto.errors import ProblemItem
from flowmesh_registry.validate import validate_definition
from flowmesh_registry.validation.actions import action_keys
from flowmesh_registry.validation.limits import Limits
from tests.action_specs import HELPDESK, helpdesk

CONNECTORS = frozenset({"helpdesk"})


def _node(index: int, action: str, version: int | None) -> dict[str, Any]:
    parameters: dict[str, Any] = {"action": action, "connector": "helpdesk"}
    given = {"channel": "C1", "text": "t"} if action.startswith("slack.") else {"title": "t"}
    parameters |= {"input": given} | ({"version": version} if version else {})
    return {"id": f"n{index}", "type": "action", "parameters": parameters}


def _workflow(*named: ActionKey) -> dict[str, Any]:
    nodes = [_node(i, name, version) for i, (name, version) in enumerate(named)]
    return {"name": "w", "nodes": nodes, "edges": []}


def _known(*keys: ActionKey, body: dict[str, Any] = HELPDESK) -> dict[ActionKey, Action]:
    spec = msgspec.convert(body, ActionSpec)
    return {key: Action(name=key[0], version=key[1] or 1, builtin=False, spec=spec) for key in keys}


def _parameters(problems: list[ProblemItem]) -> list[tuple[str, str]]:
    """The problems of nodes' parameters (several nodes without edges are orphans too)."""
    return [(p.path, p.code) for p in problems if ".parameters" in p.path]


def test_a_workflow_names_at_most_the_limit_of_tenant_actions() -> None:
    keys: list[ActionKey] = [("a.x", 1), ("a.x", 2), ("a.x", 1), ("b.y", None)]
    workflow = _workflow(*keys, ("slack.post_message", None))
    assert action_keys(workflow) == [("a.x", 1), ("a.x", 2), ("b.y", None)]  # the order loaded
    known = _known(("a.x", 1), ("a.x", 2), ("b.y", None))
    report = validate_definition(
        workflow,
        limits=Limits(max_tenant_actions=2),
        known_actions=known,
        known_connectors=CONNECTORS,
    )
    assert _parameters(report.problems) == [("nodes[3].parameters.action", "VALIDATION_FAILED")]
    report = validate_definition(
        workflow,
        limits=Limits(max_tenant_actions=3),
        known_actions=known,
        known_connectors=CONNECTORS,
    )
    assert _parameters(report.problems) == []


def test_two_actions_of_one_name_and_version_are_judged_by_their_own_schemas() -> None:
    workflow = _workflow(("a.x", 1))
    strict = helpdesk(input_schema={"type": "object", "required": ["n"]}, example=None)
    loose = helpdesk(input_schema={"type": "object"}, example=None)
    for body, paths in ((strict, ["nodes[0].parameters.input.n"]), (loose, [])):
        report = validate_definition(
            workflow, known_actions=_known(("a.x", 1), body=body), known_connectors=CONNECTORS
        )
        assert [path for path, _ in _parameters(report.problems)] == paths
