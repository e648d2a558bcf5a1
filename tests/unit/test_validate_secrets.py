"""Secrets leave only where they are sent (DESIGN section 12): the validator refuses every
read of ``secrets`` outside an http node's url, headers, query and body, at its path."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from flowmesh_proto.errors import ErrorCode, problem
from flowmesh_registry.validate import validate_definition

NOT_ALLOWED = ErrorCode.SECRET_NOT_ALLOWED.name
KNOWN = frozenset({"TOKEN"})


def chain(*nodes: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``call`` (an http node) followed by ``nodes`` in a line."""
    first = {"id": "call", "type": "http", "parameters": {"url": "https://api.example/x"}}
    every = [first, *nodes]
    edges = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(every)]
    return {"name": "wf", "nodes": every, "edges": edges, **fields}


def node(node_id: str, type_name: str, **parameters: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_name, "parameters": parameters}


def found(doc: dict[str, Any]) -> set[tuple[str, str]]:
    report = validate_definition(doc, known_secrets=KNOWN)
    return {(p.path, p.code) for p in report.problems}


ATTACKS: list[tuple[str, dict[str, Any], str]] = [
    (
        "bytes() in a transform",
        chain(node("peek", "transform", output={"x": "{{ bytes(secrets.TOKEN) }}"})),
        "nodes[1].parameters.output.x",
    ),
    (
        "startsWith in a transform",
        chain(node("peek", "transform", output="{{ secrets.TOKEN.startsWith('sk_live_H') }}")),
        "nodes[1].parameters.output",
    ),
    (
        "size() in a transform list",
        chain(node("peek", "transform", output=[1, {"n": "{{ size(secrets.TOKEN) }}"}])),
        "nodes[1].parameters.output[1].n",
    ),
    (
        "a condition",
        chain(node("peek", "condition", expression="secrets.TOKEN.startsWith('a')")),
        "nodes[1].parameters.expression",
    ),
    (
        "a switch",
        chain(
            node(
                "peek",
                "switch",
                expression="secrets.TOKEN.startsWith('a') ? 'a' : 'b'",
                cases=["a"],
            )
        ),
        "nodes[1].parameters.expression",
    ),
    (
        "publish data",
        chain(node("peek", "publish", event="leak", data={"t": "{{ secrets.TOKEN }}"})),
        "nodes[1].parameters.data.t",
    ),
    (
        "publish event type",
        chain(node("peek", "publish", event="x.{{ size(secrets.TOKEN) }}")),
        "nodes[1].parameters.event",
    ),
    (
        "task input",
        chain(node("peek", "task", queue="q", input={"t": "{{ secrets.TOKEN }}"})),
        "nodes[1].parameters.input.t",
    ),
    (
        "workflow input",
        chain(
            node(
                "peek",
                "workflow",
                workflow_id="0190a0c2-7c44-7d5e-8a9b-1c2d3e4f5a6b",
                input="{{ secrets.TOKEN }}",
            )
        ),
        "nodes[1].parameters.input",
    ),
    (
        "map items",
        chain(node("peek", "map", items="[secrets.TOKEN]", node={"type": "noop"})),
        "nodes[1].parameters.items",
    ),
    (
        "a map's per-item transform",
        chain(
            node(
                "peek",
                "map",
                items="[1, 2]",
                node={"type": "transform", "parameters": {"output": "{{ secrets.TOKEN }}"}},
            )
        ),
        "nodes[1].parameters.node.parameters.output",
    ),
    (
        "a map's per-item http method",
        chain(
            node(
                "peek",
                "map",
                items="[1]",
                node={
                    "type": "http",
                    "parameters": {"url": "https://a.example", "method": "{{ secrets.TOKEN }}"},
                },
            )
        ),
        "nodes[1].parameters.node.parameters.method",
    ),
    (
        "a wait_for_event match",
        chain(node("peek", "wait_for_event", event="e", match="event.data.t == secrets.TOKEN")),
        "nodes[1].parameters.match",
    ),
    (
        "a delay",
        chain(node("peek", "delay", duration="PT{{ size(secrets.TOKEN) }}S")),
        "nodes[1].parameters.duration",
    ),
    (
        "an http method",
        chain(node("peek", "http", url="https://a.example", method="{{ secrets.TOKEN }}")),
        "nodes[1].parameters.method",
    ),
    (
        "the concurrency key",
        chain(concurrency={"key": "secrets.TOKEN", "limit": 1}),
        "concurrency.key",
    ),
    (
        "an event trigger filter",
        chain(
            triggers=[
                {"id": "t", "kind": "event", "event": "e", "filter": "size(secrets.TOKEN) > 3"}
            ]
        ),
        "triggers[0].filter",
    ),
]


@pytest.mark.parametrize(("doc", "path"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_a_secret_read_where_it_is_not_sent_is_refused_at_its_path(
    doc: dict[str, Any], path: str
) -> None:
    problems = found(doc)
    assert (path, NOT_ALLOWED) in problems
    assert {code for _, code in problems} == {NOT_ALLOWED}
    refused = validate_definition(doc, known_secrets=KNOWN).problems
    answer = problem(ErrorCode.VALIDATION_FAILED, errors=[p for p in refused if p.path == path])
    assert (answer.status, answer.code, answer.code_num) == (422, NOT_ALLOWED, 4227)


def test_expect_status_cannot_be_a_template_at_all() -> None:
    parameters = {"url": "https://a.example", "expect_status": ["{{ size(secrets.TOKEN) }}"]}
    doc = chain(node("peek", "http", **parameters))
    assert found(doc) == {("nodes[1].parameters.expect_status[0]", "INVALID_NODES")}


def test_the_secret_is_not_counted_as_a_dependency_where_refused() -> None:
    doc = chain(node("peek", "transform", output="{{ secrets.TOKEN }}"))
    assert validate_definition(doc).secret_refs == []


@pytest.mark.parametrize(
    "parameters",
    [
        {"url": "https://api.example/{{ secrets.TOKEN }}"},
        {"url": "https://api.example", "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"}},
        {"url": "https://api.example", "query": {"key": "{{ secrets.TOKEN }}"}},
        {"url": "https://api.example", "body": {"auth": {"t": ["{{ secrets.TOKEN }}"]}}},
        {"url": "https://api.example", "body": "{{secrets.TOKEN}}"},
        {"url": "https://api.example?key={{ secrets.TOKEN }}"},
        {"url": "https://user@api.example:8443/{{ run.id }}/{{ secrets.TOKEN }}"},
    ],
)
def test_an_http_request_may_carry_secrets(parameters: dict[str, Any]) -> None:
    doc = chain(node("send", "http", **parameters))
    report = validate_definition(doc, known_secrets=KNOWN)
    assert report.problems == []
    assert report.secret_refs == ["TOKEN"]


@pytest.mark.parametrize(
    ("parameters", "path"),
    [
        ({"url": "https://a.example/{{ bytes(secrets.TOKEN) }}"}, "url"),
        ({"url": "https://a.example/{{ string(size(secrets.TOKEN)) }}"}, "url"),
        (
            {"url": "https://a.example", "headers": {"X": "{{ secrets.TOKEN > 'm' ? 1 : 2 }}"}},
            "headers.X",
        ),
        (
            {"url": "https://a.example", "query": {"q": "{{ secrets.TOKEN.startsWith('s') }}"}},
            "query.q",
        ),
        ({"url": "https://a.example", "body": {"b": "{{ secrets.TOKEN + 'x' }}"}}, "body.b"),
    ],
)
def test_a_request_sends_a_secret_as_it_is_not_a_value_computed_from_it(
    parameters: dict[str, Any], path: str
) -> None:
    doc = chain(node("send", "http", **parameters))
    assert found(doc) == {(f"nodes[1].parameters.{path}", NOT_ALLOWED)}


@pytest.mark.parametrize(
    "url",
    [
        "{{ secrets.TOKEN }}",
        "https://{{ secrets.TOKEN }}.invalid/",
        "https://api.{{ secrets.TOKEN }}/x",
        "https://api.example:{{ secrets.TOKEN }}/x",
        "https://user:{{ secrets.TOKEN }}@api.example/x",
        "{{ secrets.TOKEN }}://api.example/x",
        "https://{{ run.id }}/{{ secrets.TOKEN }}",
        "https:///{{ secrets.TOKEN }}",
        "api.example/{{ secrets.TOKEN }}",
    ],
)
def test_a_secret_in_the_scheme_or_authority_of_a_url_is_refused(url: str) -> None:
    doc = chain(node("send", "http", url=url))
    report = validate_definition(doc, known_secrets=KNOWN)
    assert {(p.path, p.code) for p in report.problems} == {("nodes[1].parameters.url", NOT_ALLOWED)}
    message = report.problems[0].message
    assert "path, query, headers and body only" in message


def test_a_secret_in_the_host_of_a_maps_per_item_http_template_is_refused() -> None:
    template = {"type": "http", "parameters": {"url": "https://{{ secrets.TOKEN }}.invalid/"}}
    doc = chain(node("each", "map", items="[1, 2]", node=template))
    assert found(doc) == {("nodes[1].parameters.node.parameters.url", NOT_ALLOWED)}


def test_a_maps_per_item_http_template_may_carry_secrets() -> None:
    template = {
        "type": "http",
        "parameters": {
            "url": "https://api.example/{{ item }}",
            "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
        },
    }
    doc = chain(node("each", "map", items="[1, 2]", node=template))
    assert found(doc) == set()
    assert validate_definition(doc).secret_refs == ["TOKEN"]


def test_an_unknown_secret_in_an_http_request_is_still_a_missing_variable() -> None:
    doc = chain(node("send", "http", url="https://api.example/{{ secrets.OTHER }}"))
    assert found(doc) == {("nodes[1].parameters.url", "MISSING_VARIABLE")}
