"""Action nodes in a definition (the validator): the action they name, its version, their
connector and their input against the action's schema, each problem at its path."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import msgspec

from flowmesh_proto.actions import Action, ActionKey, ActionRequest, ActionSpec, action_refs
from flowmesh_proto.workflow import definition_from_builtins
from flowmesh_registry.validate import ValidationReport, validate_definition
from flowmesh_registry.validation.actions import action_keys

CRM = ActionSpec(
    description="Upserts a contact.",
    input_schema={
        "type": "object",
        "properties": {"id": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["id"],
        "additionalProperties": False,
    },
    request=ActionRequest(method="PUT", path="/c/{{ input.id }}"),
)


def _tenant(version: int = 1) -> Action:
    spec = msgspec.convert(msgspec.to_builtins(CRM), ActionSpec)
    return Action(name="crm.upsert", version=version, builtin=False, spec=spec)


KNOWN: dict[ActionKey, Action] = {("crm.upsert", None): _tenant(2), ("crm.upsert", 1): _tenant(1)}


def _validate(
    *nodes: dict[str, Any], known: dict[ActionKey, Action] | None = KNOWN
) -> ValidationReport:
    chained = [{"from": a["id"], "to": b["id"]} for a, b in pairwise(nodes)]
    definition = {
        "name": "actions",
        "triggers": [{"id": "hook", "kind": "webhook"}],
        "nodes": list(nodes),
        "edges": chained,
    }
    return validate_definition(
        definition,
        known_connectors=frozenset({"slack", "crm"}),
        known_secrets=frozenset({"TOKEN"}),
        known_actions=known,
    )


def _action(node_id: str, action: str, connector: str = "crm", **parameters: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "action",
        "parameters": {"action": action, "connector": connector, **parameters},
    }


def _problems(report: ValidationReport) -> dict[str, str]:
    return {item.path: item.code for item in report.problems}


def test_a_good_action_node_of_each_kind_passes() -> None:
    report = _validate(
        _action("a", "slack.post_message", "slack", input={"channel": "C1", "text": "hi"}),
        _action("b", "crm.upsert", input={"id": "{{ trigger.data.id }}", "age": 3}),
        _action("c", "crm.upsert", version=1, input={"id": "x"}),
    )
    assert report.problems == []
    assert report.definition is not None


def test_input_breaking_the_schema_is_a_problem_at_its_path() -> None:
    report = _validate(
        _action("a", "slack.post_message", "slack", input={"channel": 5, "txt": "x"}),
        _action("b", "crm.upsert", input={"age": -1}),
    )
    assert _problems(report) == {
        "nodes[0].parameters.input.channel": "VALIDATION_FAILED",
        "nodes[0].parameters.input.txt": "VALIDATION_FAILED",
        "nodes[0].parameters.input": "VALIDATION_FAILED",  # neither text nor blocks
        "nodes[1].parameters.input.id": "VALIDATION_FAILED",
        "nodes[1].parameters.input.age": "VALIDATION_FAILED",
    }


def test_a_template_passes_where_its_value_is_not_known_yet() -> None:
    report = _validate(_action("b", "crm.upsert", input={"id": "x", "age": "{{ trigger.data.n }}"}))
    assert report.problems == []


def test_unknown_actions_versions_and_connectors_are_missing_variables() -> None:
    report = _validate(
        _action("a", "crm.nothing", input={}),
        _action("b", "crm.upsert", version=9, input={"id": "x"}),
        _action("c", "slack.post_message", "nowhere", input={"channel": "C", "text": "t"}),
        _action("d", "slack.post_message", "slack", version=2, input={}),
        _action("e", "slack.no_such", "slack", input={}),
    )
    assert _problems(report) == {
        "nodes[0].parameters.action": "MISSING_VARIABLE",
        "nodes[1].parameters.version": "MISSING_VARIABLE",
        "nodes[2].parameters.connector": "MISSING_VARIABLE",
        "nodes[3].parameters.version": "MISSING_VARIABLE",
        "nodes[4].parameters.action": "MISSING_VARIABLE",
    }


def test_without_the_tenants_actions_only_built_in_ones_are_looked_up() -> None:
    report = _validate(
        _action("a", "crm.whatever", input={"anything": 1}),
        _action("b", "slack.nope", "slack", input={}),
        known=None,
    )
    assert _problems(report) == {"nodes[1].parameters.action": "MISSING_VARIABLE"}


def test_names_versions_and_literals_are_checked() -> None:
    report = _validate(
        _action("a", "Not A Name", input={}),
        _action("b", "crm.upsert", version=0, input={"id": "x"}),
        _action("c", "{{ trigger.data.action }}", input={}),
    )
    problems = _problems(report)
    assert problems["nodes[0].parameters.action"] == "INVALID_NODES"
    assert problems["nodes[1].parameters.version"] == "INVALID_NODES"
    assert "nodes[2].parameters.action" in problems


def test_an_action_input_cannot_read_a_secret() -> None:
    report = _validate(_action("b", "crm.upsert", input={"id": "{{ secrets.TOKEN }}"}))
    assert _problems(report) == {"nodes[0].parameters.input.id": "SECRET_NOT_ALLOWED"}


def test_a_maps_per_item_action_is_checked_like_a_node() -> None:
    mapped = {
        "id": "each",
        "type": "map",
        "parameters": {
            "items": "trigger.data.people",
            "node": {
                "type": "action",
                "parameters": {"action": "crm.upsert", "connector": "gone", "input": {"age": "x"}},
            },
        },
    }
    problems = _problems(_validate(mapped))
    assert problems == {
        "nodes[0].parameters.node.parameters.connector": "MISSING_VARIABLE",
        "nodes[0].parameters.node.parameters.input.id": "VALIDATION_FAILED",
        "nodes[0].parameters.node.parameters.input.age": "VALIDATION_FAILED",
    }


def test_the_keys_read_before_validation_and_the_refs_after_it_agree() -> None:
    definition = {
        "name": "refs",
        "nodes": [
            _action("a", "crm.upsert", input={"id": "x"}),
            _action("b", "crm.upsert", version=1, input={"id": "x"}),
            _action("c", "slack.post_message", "slack", input={"channel": "C", "text": "t"}),
            {
                "id": "m",
                "type": "map",
                "parameters": {
                    "items": "[1]",
                    "node": {
                        "type": "action",
                        "parameters": {"action": "ops.page", "connector": "crm"},
                    },
                },
            },
        ],
    }
    assert action_keys(definition) == [("crm.upsert", None), ("crm.upsert", 1), ("ops.page", None)]
    refs = dict(action_refs(definition_from_builtins(definition)))
    assert refs == {
        ("crm.upsert", None): "crm",
        ("crm.upsert", 1): "crm",
        ("slack.post_message", None): "slack",
        ("ops.page", None): "crm",
    }
    assert action_keys({"nodes": "x"}) == []
    assert action_keys({"nodes": [{"type": "action", "parameters": {"action": 5}}]}) == []


def test_two_tenants_actions_of_one_name_and_version_are_judged_each_by_its_own_schema() -> None:
    strict = msgspec.convert(msgspec.to_builtins(CRM), ActionSpec)
    loose_schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    loose = msgspec.structs.replace(strict, input_schema=loose_schema)
    node = _action("b", "crm.upsert", input={"id": 5})
    first = {("crm.upsert", None): Action(name="crm.upsert", version=1, builtin=False, spec=loose)}
    second = {
        ("crm.upsert", None): Action(name="crm.upsert", version=1, builtin=False, spec=strict)
    }
    assert _validate(node, known=first).problems == []
    assert _problems(_validate(node, known=second)) == {
        "nodes[0].parameters.input.id": "VALIDATION_FAILED"
    }
