"""The executor resolves secrets only into an http request's parameters (DESIGN section 12),
even for a definition that never went through validation (a version stored before the rule)."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest

from flowmesh_executor.actions import RunContext
from flowmesh_executor.engine import cel_context
from flowmesh_executor.instant import (
    expression_context,
    redact,
    render_parameters,
    secret_forms,
)
from flowmesh_executor.references import secret_names
from flowmesh_executor.state import RunState
from flowmesh_proto.workflow import Definition, definition_from_builtins
from flowmesh_shared.expressions import ExpressionError
from tests.unit.engine_shell import Run

VALUE = "sk_live_Hx9s3cr3t"
SECRETS = {"TOKEN": VALUE}
LEAKS = (VALUE.encode(), base64.b64encode(VALUE.encode()), b'"sk_live_H"', b"true")


def unvalidated(*nodes: dict[str, Any]) -> Definition:
    """A definition decoded as stored, never validated (it reads secrets where it may not)."""
    return definition_from_builtins({"name": "old", "nodes": list(nodes)})


def test_the_cel_context_of_a_run_holds_no_secret() -> None:
    definition = unvalidated({"id": "a", "type": "noop"})
    variables = cel_context(definition, RunState(), RunContext(secrets=SECRETS))
    assert variables["secrets"] == {}
    assert VALUE not in repr(variables)
    plain = expression_context(trigger={}, nodes={}, variables={}, run={})
    assert plain["secrets"] == {}


def test_an_http_request_is_rendered_with_secrets_in_url_headers_query_and_body() -> None:
    variables = expression_context(trigger={"data": {"id": 7}}, nodes={}, variables={}, run={})
    raw = {
        "url": "https://api.example/{{ trigger.data.id }}/{{ secrets.TOKEN }}",
        "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
        "query": {"k": "{{ secrets.TOKEN }}"},
        "body": {"t": ["{{ secrets.TOKEN }}"]},
        "method": "POST",
    }
    rendered = render_parameters("http", raw, variables, SECRETS)
    assert rendered == {
        "url": f"https://api.example/7/{VALUE}",
        "headers": {"Authorization": f"Bearer {VALUE}"},
        "query": {"k": VALUE},
        "body": {"t": [VALUE]},
        "method": "POST",
    }
    assert variables["secrets"] == {}  # the run's variables are left as they were


@pytest.mark.parametrize(
    ("type_name", "raw"),
    [
        ("http", {"url": "https://a.example", "method": "{{ secrets.TOKEN }}"}),
        ("http", {"url": "https://a.example/{{ bytes(secrets.TOKEN) }}"}),
        ("http", {"url": "https://a.example", "headers": {"X": "{{ size(secrets.TOKEN) }}"}}),
        ("publish", {"event": "e", "data": {"t": "{{ bytes(secrets.TOKEN) }}"}}),
        ("task", {"queue": "q", "input": "{{ size(secrets.TOKEN) }}"}),
        ("workflow", {"workflow_id": "w", "input": "{{ secrets.TOKEN.startsWith('sk') }}"}),
        ("delay", {"duration": "PT{{ size(secrets.TOKEN) }}S"}),
        ("wait_for_event", {"event": "{{ secrets.TOKEN }}"}),
    ],
)
def test_every_other_parameter_sees_no_secret(type_name: str, raw: dict[str, Any]) -> None:
    variables = expression_context(trigger={}, nodes={}, variables={}, run={})
    with pytest.raises(ExpressionError) as caught:
        render_parameters(type_name, raw, variables, SECRETS)
    assert VALUE not in str(caught.value)


@pytest.mark.parametrize(
    "node",
    [
        {"id": "a", "type": "transform", "parameters": {"output": "{{ bytes(secrets.TOKEN) }}"}},
        {"id": "a", "type": "transform", "parameters": {"output": "{{ size(secrets.TOKEN) }}"}},
        {
            "id": "a",
            "type": "transform",
            "parameters": {"output": "{{ secrets.TOKEN.startsWith('sk_live_H') }}"},
        },
        {"id": "a", "type": "condition", "parameters": {"expression": "secrets.TOKEN == ''"}},
        {
            "id": "a",
            "type": "switch",
            "parameters": {
                "expression": "secrets.TOKEN.startsWith('s') ? 'y' : 'n'",
                "cases": ["y"],
            },
        },
    ],
)
def test_an_unvalidated_instant_node_reading_a_secret_fails_without_it(
    node: dict[str, Any],
) -> None:
    run = Run(unvalidated(node), context=RunContext(secrets=SECRETS))
    run.decide()
    step = run.state.nodes["a"]
    assert step.status == "failed"
    assert step.error_class == "ExpressionError"
    recorded = msgspec.json.encode(run.events)
    assert not [leak for leak in LEAKS if leak in recorded]


def test_only_the_secrets_of_http_requests_are_resolved() -> None:
    definition = unvalidated(
        {"id": "peek", "type": "transform", "parameters": {"output": "{{ secrets.PEEK }}"}},
        {"id": "check", "type": "condition", "parameters": {"expression": "secrets.FLAG == ''"}},
        {
            "id": "call",
            "type": "http",
            "parameters": {
                "url": "https://a.example/{{ secrets.PATH }}",
                "method": "{{ secrets.METHOD }}",
                "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
            },
        },
        {
            "id": "each",
            "type": "map",
            "parameters": {
                "items": "[secrets.ITEMS]",
                "node": {
                    "type": "http",
                    "parameters": {"url": "https://a.example", "query": {"k": "{{ secrets.K }}"}},
                },
            },
        },
        {
            "id": "each_transform",
            "type": "map",
            "parameters": {
                "items": "[1]",
                "node": {"type": "transform", "parameters": {"output": "{{ secrets.T }}"}},
            },
        },
    )
    assert secret_names(definition) == {"PATH", "TOKEN", "K"}


@pytest.mark.parametrize(
    ("secret", "seen"),
    [
        ("SkLiveAbCdEf0123", "skliveabcdef0123"),  # lowercased (a host name)
        ('p@ss w0rd/\u00fc"x', "p%40ss%20w0rd%2F%C3%BC%22x"),  # percent-encoded
        ('p@ss w0rd/\u00fc"x', "p%40ss%20w0rd/%C3%BC%22x"),  # percent-encoded, / kept
        ("ab%41%42cd", "abABcd"),  # percent-decoded
    ],
)
def test_redaction_also_replaces_the_forms_a_url_gives_a_secret(secret: str, seen: str) -> None:
    message = f"GET https://x.example/{seen}: failed"
    assert redact(message, {"K": secret}) == "GET https://x.example/[redacted]: failed"
    assert redact({"m": [message]}, {"K": secret}) == {
        "m": ["GET https://x.example/[redacted]: failed"]
    }


def test_forms_shorter_than_four_characters_are_not_redacted() -> None:
    assert secret_forms("Ab") == {"Ab"}  # the exact value only: not every "ab"
    assert redact("Ab ab", {"K": "Ab"}) == "[redacted] ab"
    assert redact("aAb", {"K": "a%41b"}) == "aAb"  # decoded, 3 characters: kept
    assert "abcd" in secret_forms("ABCD")
