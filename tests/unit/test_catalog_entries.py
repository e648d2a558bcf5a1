"""The catalog's entries (GET /catalog): generated from the language's Structs, every example
valid against its schema and through the real validator, every output schema matched by
what the executor really outputs."""

from __future__ import annotations

from collections import Counter
from typing import Any

import jsonschema_rs
import msgspec
import pytest

from flowmesh_executor.instant import evaluate_instant
from flowmesh_proto.actions import Action, ActionSpec
from flowmesh_proto.catalog import NODE_KINDS
from flowmesh_proto.entries import (
    ENTRY_CATEGORIES,
    CatalogEntry,
    action_entry,
    catalog_page,
    cursor_of,
    node_catalog,
    tenant_catalog_page,
)
from flowmesh_proto.events import EventEnvelope
from flowmesh_proto.outputs import HttpOutput, PublishOutput
from flowmesh_proto.workflow import Node
from flowmesh_registry.validate import validate_definition
from tests.action_specs import HELPDESK

ENTRIES = node_catalog()
BY_NAME = {entry.name: entry for entry in ENTRIES}
NODE_DECODER = msgspec.json.Decoder(Node)


def _workflow(entry: CatalogEntry) -> dict[str, Any]:
    """A minimal workflow around the example: a trigger giving ``trigger.data``, the node,
    and (after a condition or a switch) an edge for each way out."""
    node = {"id": "it", "type": entry.name, "parameters": entry.example}
    nodes: list[dict[str, Any]] = [node]
    edges: list[dict[str, Any]] = []
    ways = {"condition": ["true", "false"], "switch": [*entry.example.get("cases", []), "default"]}
    for n, when in enumerate(ways.get(entry.name, [])):
        nodes.append({"id": f"after{n}", "type": "noop"})
        edges.append({"from": "it", "to": f"after{n}", "when": when})
    return {
        "name": f"catalog-{entry.name}",
        "vars": {"total": 1},
        "triggers": [{"id": "hook", "kind": "webhook"}],
        "nodes": nodes,
        "edges": edges,
    }


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_example_is_valid_against_its_schema_and_through_the_validator(
    entry: CatalogEntry,
) -> None:
    errors = [
        e.message
        for e in jsonschema_rs.validator_for(entry.parameters_schema).iter_errors(entry.example)
    ]
    assert errors == []
    report = validate_definition(_workflow(entry), known_secrets=frozenset({"API_TOKEN"}))
    assert report.problems == [], report.problems
    assert report.definition is not None


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_schema_is_self_contained_and_says_what_its_struct_says(
    entry: CatalogEntry,
) -> None:
    for schema in (entry.parameters_schema, entry.output_schema):
        assert "$ref" not in msgspec.json.encode(schema).decode()
        jsonschema_rs.validator_for(schema)  # compiles
    parameters = NODE_KINDS[entry.name].parameters
    assert entry.parameters_schema["title"] == parameters.__name__
    fields = {f.encode_name for f in msgspec.structs.fields(parameters)}
    assert set(entry.parameters_schema["properties"]) == fields
    assert entry.parameters_schema["additionalProperties"] is False
    assert entry.description and entry.description == " ".join(parameters.__doc__.split())
    assert entry.category in ENTRY_CATEGORIES
    assert entry.kind == "node"
    assert entry.requires.role == "editor" and entry.requires.secrets == []


def test_every_node_type_the_validator_knows_has_exactly_one_entry() -> None:
    known = {str(member.__struct_config__.tag) for member in Node.__args__}  # type: ignore[attr-defined]
    assert Counter(entry.name for entry in ENTRIES) == Counter(known)
    # and a type the validator does not know is refused: the catalog lists no other
    report = validate_definition({"name": "x", "nodes": [{"id": "a", "type": "nosuch"}]})
    assert report.problems and report.problems[0].path == "nodes[0].type"


def test_pages_cover_every_entry_once_in_cursor_order() -> None:
    seen: list[str] = []
    cursor = None
    while True:
        page = catalog_page(ENTRIES, limit=3, cursor=cursor)
        seen += [cursor_of(e) for e in page.items]
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert seen == sorted(cursor_of(e) for e in ENTRIES)
    assert catalog_page(ENTRIES, limit=50, kind="action").items == []
    waiting = catalog_page(ENTRIES, limit=50, category="waiting").items
    assert [e.name for e in waiting] == ["delay", "wait_for_event"]


def _check(name: str, output: Any) -> None:
    validator = jsonschema_rs.validator_for(BY_NAME[name].output_schema)
    assert [e.message for e in validator.iter_errors(output)] == [], (name, output)


def _instant(name: str, parameters: dict[str, Any], context: dict[str, Any]) -> Any:
    node = NODE_DECODER.decode(
        msgspec.json.encode({"id": "it", "type": name, "parameters": parameters})
    )
    return evaluate_instant(node, context, {})


CONTEXT = {"trigger": {"data": {"id": 7, "total": 150, "region": "us"}}, "vars": {"total": 1}}


@pytest.mark.parametrize("name", ["noop", "transform", "condition", "switch"])
def test_an_instant_nodes_real_output_matches_its_output_schema(name: str) -> None:
    output = _instant(name, BY_NAME[name].example, CONTEXT)
    _check(name, output)
    if name == "condition":
        assert output is True  # a bare boolean, not an object
    if name == "switch":
        assert output == "us"


def test_a_step_nodes_output_types_are_the_executors() -> None:
    """http and publish build their outputs from these Structs (nodes/http.py,
    nodes/publish.py), wait_for_event outputs the event envelope as it is; the integration
    tests run them. Their schemas accept what those Structs encode, and refuse others."""
    http = msgspec.to_builtins(HttpOutput(status=200, headers={"a": "b"}, body={"x": 1}))
    _check("http", http)
    _check("publish", msgspec.to_builtins(PublishOutput(event_id="e1")))
    _check("wait_for_event", msgspec.to_builtins(EventEnvelope(id="e", type="t", tenant="x")))
    _check("delay", None)
    _check("map", [1, "two", None])
    with pytest.raises(AssertionError):
        _check("http", {"status": "200", "headers": {}, "body": None})
    with pytest.raises(AssertionError):
        _check("condition", {"result": True})


def _own(name: str) -> CatalogEntry:
    spec = msgspec.convert(HELPDESK, ActionSpec)
    return action_entry(Action(name=name, version=1, builtin=False, spec=spec))


def test_a_tenant_page_ends_where_the_registrys_did_when_it_has_more() -> None:
    given = [_own("aaa"), _own("bbb")]  # the registry gave two of more (large specs)
    page = tenant_catalog_page(given, more_actions=True, limit=5)
    assert [e.name for e in page.items] == ["aaa", "bbb"]  # no node type skips the rest
    assert page.has_more and page.next_cursor == "action:bbb"
    last = tenant_catalog_page([_own("ccc")], more_actions=False, limit=3, cursor=page.next_cursor)
    assert [(e.kind, e.name) for e in last.items] == [
        ("action", "ccc"),
        *[("node", name) for name in sorted(NODE_KINDS)[:2]],
    ]
    assert last.has_more and last.next_cursor == f"node:{sorted(NODE_KINDS)[1]}"
    alone = tenant_catalog_page(given, more_actions=True, limit=2, kind="action")
    assert alone.has_more and alone.next_cursor == "action:bbb"


def test_a_tenant_actions_entry_shows_its_input_schema_and_version() -> None:
    entry = _own("helpdesk.open")
    properties = entry.parameters_schema["properties"]
    assert properties["action"] == {"const": "helpdesk.open", "description": "This action's name."}
    assert properties["input"]["properties"] == HELPDESK["input_schema"]["properties"]
    assert "version" in properties and entry.requires.secrets == []
    jsonschema_rs.validator_for(entry.parameters_schema).validate(entry.example)
