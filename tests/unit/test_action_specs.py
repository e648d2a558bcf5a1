"""Actions at validation: a spec on its own (flowmesh_registry.validation.actions), and the
catalog's action entries (flowmesh_proto.entries)."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import msgspec
import pytest

from flowmesh_proto.action_library import RESERVED_PREFIXES, builtin_actions, is_reserved
from flowmesh_proto.actions import ACTION_NAME_PATTERN, Action, ActionSpec
from flowmesh_proto.entries import ENTRY_CATEGORIES, action_entry, builtin_action_catalog
from flowmesh_registry.validate import validate_definition
from flowmesh_registry.validation.actions import check_action_spec
from flowmesh_shared.json_schemas import compile_schema, schema_problems

BUILTINS = builtin_actions()


def _spec(**changes: Any) -> ActionSpec:
    """A good spec with ``changes`` (``request`` and ``result`` merged member by member)."""
    data: dict[str, Any] = {
        "description": "Upserts a contact in the CRM.",
        "category": "data",
        "input_schema": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "email": {"type": "string"}},
            "required": ["id"],
        },
        "request": {
            "method": "PUT",
            "path": "/contacts/{{ input.id }}",
            "headers": {"Accept": "application/json"},
            "body": {"email": "{{ input.email }}"},
        },
        "result": {"output": "response.body", "message": "string(response.status)"},
        "example": {"id": "{{ trigger.data.id }}", "email": "a@example.com"},
    }
    for key, value in changes.items():
        if key in ("request", "result"):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return msgspec.convert(data, ActionSpec)


def _problems(spec: ActionSpec) -> dict[str, str]:
    return {item.path: item.code for item in check_action_spec(spec)}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_built_in_action_passes_its_own_checks(name: str) -> None:
    action = BUILTINS[name]
    assert check_action_spec(action.spec) == []
    assert msgspec.convert(msgspec.to_builtins(action.spec), ActionSpec) == action.spec
    assert is_reserved(name)


def test_a_good_spec_has_no_problem() -> None:
    assert check_action_spec(_spec()) == []


@pytest.mark.parametrize(
    ("changes", "path", "code"),
    [
        (
            {"input_schema": {"type": "object", "properties": 5}},
            "input_schema",
            "VALIDATION_FAILED",
        ),
        ({"input_schema": {"type": "string"}}, "input_schema.type", "VALIDATION_FAILED"),
        (  # ~45 ms to compile each: refused before any is compiled
            {
                "input_schema": {
                    "type": "object",
                    "properties": {f"p{i}": {"pattern": rf"\p{{L}}{{200}}{i}"} for i in range(50)},
                }
            },
            "input_schema",
            "VALIDATION_FAILED",
        ),
        (
            {"input_schema": {"type": "object", "$ref": "https://evil.example/s.json"}},
            "input_schema",
            "VALIDATION_FAILED",
        ),
        ({"output_schema": {"type": 7}}, "output_schema", "VALIDATION_FAILED"),
        ({"example": {"email": 5}}, "example.email", "VALIDATION_FAILED"),
        ({"example": {"email": "x"}}, "example.id", "VALIDATION_FAILED"),
        ({"request": {"path": "//evil.example/x"}}, "request.path", "VALIDATION_FAILED"),
        ({"request": {"path": "/a/../../admin"}}, "request.path", "VALIDATION_FAILED"),
        ({"request": {"path": "/a/%2e%2e/x"}}, "request.path", "VALIDATION_FAILED"),
        ({"request": {"path": "contacts"}}, "request.path", "VALIDATION_FAILED"),
        ({"request": {"path": "/x/{{ secrets.TOKEN }}"}}, "request.path", "SECRET_NOT_ALLOWED"),
        (
            {"request": {"headers": {"Authorization": "Bearer x"}}},
            "request.headers.Authorization",
            "VALIDATION_FAILED",
        ),
        ({"request": {"headers": {"a b": "x"}}}, 'request.headers["a b"]', "VALIDATION_FAILED"),
        # headers the HTTP client owns: another virtual host, a body framed otherwise
        (
            {"request": {"headers": {"Host": "evil.example"}}},
            "request.headers.Host",
            "VALIDATION_FAILED",
        ),
        (
            {"request": {"headers": {"Content-Length": "{{ input.n }}"}}},
            "request.headers.Content-Length",
            "VALIDATION_FAILED",
        ),
        (
            {"request": {"headers": {"transfer-encoding": "chunked"}}},
            "request.headers.transfer-encoding",
            "VALIDATION_FAILED",
        ),
        (
            {"request": {"headers": {"Proxy-Connection": "keep-alive"}}},
            "request.headers.Proxy-Connection",
            "VALIDATION_FAILED",
        ),
        (
            {"request": {"body": {"token": "{{ secrets.TOKEN }}"}}},
            "request.body.token",
            "SECRET_NOT_ALLOWED",
        ),
        (
            {"request": {"query": {"q": "{{ trigger.data.q }}"}}},
            "request.query.q",
            "MISSING_VARIABLE",
        ),
        (
            {"request": {"body": {"x": "{{ steps.a.output }}"}}},
            "request.body.x",
            "MISSING_VARIABLE",
        ),
        ({"request": {"body": {"x": "{{ input. }}"}}}, "request.body.x", "VALIDATION_FAILED"),
        ({"request": {"expect_status": [99]}}, "request.expect_status[0]", "VALIDATION_FAILED"),
        ({"result": {"output": "vars.x"}}, "result.output", "MISSING_VARIABLE"),
        ({"result": {"failure": "secrets.X == 'a'"}}, "result.failure", "SECRET_NOT_ALLOWED"),
        ({"result": {"message": "response.body +"}}, "result.message", "VALIDATION_FAILED"),
    ],
)
def test_each_bad_part_is_a_problem_at_its_path(
    changes: dict[str, Any], path: str, code: str
) -> None:
    assert _problems(_spec(**changes)).get(path) == code, check_action_spec(_spec(**changes))


def test_a_path_starting_with_a_template_is_left_to_run_time() -> None:
    assert _problems(_spec(request={"path": "{{ input.id }}"})) == {}


def test_unknown_fields_and_wrong_types_are_refused_when_decoded() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({**msgspec.to_builtins(_spec()), "secret": "x"}, ActionSpec)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**msgspec.to_builtins(_spec()), "category": "crypto"}, ActionSpec)
    bad_method = {**msgspec.to_builtins(_spec()), "request": {"method": "TRACE", "path": "/"}}
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(bad_method, ActionSpec)


def test_names_and_reserved_prefixes() -> None:
    import re

    for good in ("crm", "crm.upsert_contact", "a1.b2"):
        assert re.fullmatch(ACTION_NAME_PATTERN, good)
    for bad in ("", "Crm", "crm.", ".x", "a.b.c", "a-b", "1a", "x" * 40):
        assert not re.fullmatch(ACTION_NAME_PATTERN, bad)
    assert is_reserved("slack.anything") and is_reserved("github")
    assert not is_reserved("crm.upsert")
    assert {name.split(".")[0] for name in BUILTINS} <= RESERVED_PREFIXES


# --- the catalog's action entries ---------------------------------------------------------


@pytest.mark.parametrize("entry", builtin_action_catalog(), ids=lambda e: e.name)
def test_every_action_entry_example_is_valid_and_passes_the_validator(entry: Any) -> None:
    assert entry.kind == "action" and entry.category in ENTRY_CATEGORIES
    compiled = compile_schema(entry.parameters_schema)
    assert not isinstance(compiled, str)
    assert schema_problems(compiled, entry.example, root="parameters", templates=True) == []
    jsonschema_rs.validator_for(entry.output_schema)  # compiles
    assert entry.parameters_schema["properties"]["input"]["type"] == "object"
    assert entry.parameters_schema["properties"]["action"]["const"] == entry.name
    assert "version" not in entry.parameters_schema["properties"]  # a built-in has one
    spec = BUILTINS[entry.name].spec
    assert spec.connector is not None and entry.requires.secrets == spec.connector.secrets
    definition = {
        "name": f"catalog-{entry.name}",
        "triggers": [{"id": "hook", "kind": "webhook"}],
        "nodes": [{"id": "it", "type": "action", "parameters": entry.example}],
    }
    connector = frozenset({entry.example["connector"]})
    report = validate_definition(definition, known_connectors=connector, known_actions={})
    assert report.problems == [], report.problems


def test_a_tenant_action_entry_keeps_its_version_and_says_no_secrets() -> None:
    action = Action(name="crm.upsert", version=3, builtin=False, spec=_spec())
    entry = action_entry(action)
    assert entry.name == "crm.upsert" and entry.category == "data"
    assert "version" in entry.parameters_schema["properties"]
    assert entry.requires.secrets == []
    assert entry.example["input"] == _spec().example
    assert entry.parameters_schema["properties"]["input"]["required"] == ["id"]
