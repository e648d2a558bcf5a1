"""The definition validator: every code at its exact path, all problems at once, no crash."""

from __future__ import annotations

import copy
import graphlib
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmesh_proto.errors import DEFINITION_CODES, ErrorCode
from flowmesh_proto.workflow import Definition
from flowmesh_registry.validate import Limits, cron_problem, validate_definition

CHILD = "0190a0c2-7c44-7d5e-8a9b-1c2d3e4f5a6b"

# The example of DESIGN section 4, as the YAML decodes.
DESIGN_EXAMPLE: dict[str, Any] = {
    "name": "order-fulfilment",
    "description": "Charge, then ship.",
    "category": "automation",
    "tags": ["orders"],
    "enabled": True,
    "input_schema": {"type": "object"},
    "vars": {"region": "eu"},
    "triggers": [
        {
            "id": "nightly",
            "kind": "cron",
            "cron": "0 2 * * *",
            "timezone": "Europe/Berlin",
            "catch_up": "skip",
        },
        {
            "id": "big-order",
            "kind": "event",
            "event": "order.created",
            "filter": "event.data.total > 100",
        },
        {"id": "hook", "kind": "webhook"},
    ],
    "concurrency": {"key": "trigger.data.customer_id", "limit": 1, "on_limit": "queue"},
    "timeout": "PT1H",
    "nodes": [
        {
            "id": "charge",
            "type": "http",
            "parameters": {
                "method": "POST",
                "url": "https://payments.example/charge",
                "headers": {"Authorization": "Bearer {{ secrets.PAYMENTS_TOKEN }}"},
                "body": {"order": "{{ trigger.data.id }}", "amount": "{{ trigger.data.total }}"},
            },
            "retry": {
                "max_attempts": 5,
                "backoff": "exponential",
                "initial": "PT0.2S",
                "max": "PT30S",
                "jitter": True,
            },
            "timeout": "PT10S",
            "on_error": "fail",
        },
        {
            "id": "big",
            "type": "condition",
            "parameters": {
                "expression": "nodes.charge.output.status == 200 && trigger.data.total > 1000"
            },
        },
        {
            "id": "ship",
            "type": "task",
            "parameters": {"queue": "shipping", "input": {"order": "{{ trigger.data.id }}"}},
        },
    ],
    "edges": [{"from": "charge", "to": "big"}, {"from": "big", "to": "ship", "when": "true"}],
}


def base() -> dict[str, Any]:
    """start -> check -(true)-> call: valid, small, easy to break one way at a time."""
    return {
        "name": "wf",
        "vars": {"region": "eu"},
        "nodes": [
            {"id": "start", "type": "noop"},
            {
                "id": "check",
                "type": "condition",
                "parameters": {"expression": "trigger.data.total > 10"},
            },
            {"id": "call", "type": "http", "parameters": {"url": "https://example.com/x"}},
        ],
        "edges": [
            {"from": "start", "to": "check"},
            {"from": "check", "to": "call", "when": "true"},
        ],
    }


def found(doc: Any, **options: Any) -> set[tuple[str, str]]:
    return {(p.path, p.code) for p in validate_definition(doc, **options).problems}


def with_node(node: Any) -> dict[str, Any]:
    """``base()`` plus ``node`` as nodes[3], reached from ``call``."""
    doc = base()
    doc["nodes"].append(node)
    if isinstance(node, dict) and isinstance(node.get("id"), str):
        doc["edges"].append({"from": "call", "to": node["id"]})
    return doc


def test_design_example_is_valid() -> None:
    report = validate_definition(DESIGN_EXAMPLE, known_secrets=frozenset({"PAYMENTS_TOKEN"}))
    assert report.problems == []
    assert report.valid
    assert isinstance(report.definition, Definition)
    assert report.definition.nodes[0].id == "charge"
    assert report.secret_refs == ["PAYMENTS_TOKEN"]
    assert report.workflow_refs == []


def test_base_is_valid() -> None:
    assert found(base()) == set()


def test_dependencies_are_reported() -> None:
    doc = with_node({"id": "child", "type": "workflow", "parameters": {"workflow_id": CHILD}})
    doc["nodes"][2]["parameters"]["headers"] = {"X": "{{ secrets.B_KEY }}{{ secrets.A_KEY }}"}
    report = validate_definition(doc)
    assert report.valid
    assert report.workflow_refs == [CHILD]
    assert report.secret_refs == ["A_KEY", "B_KEY"]


# --- VALIDATION_FAILED and PAYLOAD_TOO_LARGE ----------------------------------------------


@pytest.mark.parametrize("raw", [[], "name: x", None, 3, [base()]])
def test_a_document_that_is_not_an_object(raw: Any) -> None:
    report = validate_definition(raw)
    assert found(raw) == {("$", "VALIDATION_FAILED")}
    assert report.definition is None


def set_path(doc: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    doc[key] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({k: v for k, v in base().items() if k != "name"}, "name"),
        (set_path(base(), "name", ""), "name"),
        (set_path(base(), "name", "n" * 256), "name"),
        (set_path(base(), "owner", "me"), "owner"),
        (set_path(base(), "category", "misc"), "category"),
        (set_path(base(), "nodes", {"id": "start"}), "nodes"),
        ({k: v for k, v in base().items() if k != "nodes"}, "nodes"),
        (set_path(base(), "tags", [f"t{i}" for i in range(51)]), "tags"),
        (set_path(base(), "tags", ["ok", ""]), "tags[1]"),
        (set_path(base(), "tags", ["ok", "t" * 65]), "tags[1]"),
        (set_path(base(), "tags", ["ok", "ok"]), "tags[1]"),
        (set_path(base(), "tags", ["ok", 3]), "tags[1]"),
        (set_path(base(), "concurrency", {"key": "1 +"}), "concurrency.key"),
        (
            set_path(base(), "concurrency", {"key": "trigger.data.id", "limit": "1"}),
            "concurrency.limit",
        ),
        (set_path(base(), "timeout", "1 hour"), "timeout"),
        (set_path(base(), "timeout", "PT0S"), "timeout"),
        (
            set_path(base(), "concurrency", {"key": "trigger.data.id", "limit": 0}),
            "concurrency.limit",
        ),
    ],
)
def test_top_level_problems(doc: dict[str, Any], path: str) -> None:
    assert found(doc) == {(path, "VALIDATION_FAILED")}


def trigger(**fields: Any) -> dict[str, Any]:
    return set_path(
        base(), "triggers", [{"id": "t1", "kind": "cron", "cron": "0 * * * *", **fields}]
    )


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (trigger(cron="* * *"), "triggers[0].cron"),
        (trigger(cron="0 0 2 * * * *"), "triggers[0].cron"),
        (trigger(cron="61 * * * *"), "triggers[0].cron"),
        (trigger(cron="0 0 * * 8"), "triggers[0].cron"),
        (trigger(cron="*/0 * * * *"), "triggers[0].cron"),
        (trigger(cron="0 0 30 2 *"), "triggers[0].cron"),
        (trigger(cron="60 0 * * * *"), "triggers[0].cron"),
        (trigger(timezone="Mars/Olympus"), "triggers[0].timezone"),
        (trigger(timezone="../../etc/passwd"), "triggers[0].timezone"),
        (trigger(timezone="localtime"), "triggers[0].timezone"),
        (trigger(timezone=""), "triggers[0].timezone"),
        (trigger(id="Not Valid"), "triggers[0].id"),
        (trigger(catch_up="never"), "triggers[0].catch_up"),
        (trigger(kind="sms"), "triggers[0].kind"),
        (trigger(kind="event", cron=None, event="a..b"), "triggers[0].cron"),
        (
            set_path(base(), "triggers", [{"id": "t", "kind": "event", "event": "a..b"}]),
            "triggers[0].event",
        ),
        (
            set_path(
                base(),
                "triggers",
                [{"id": "t", "kind": "webhook"}, {"id": "t", "kind": "webhook"}],
            ),
            "triggers[1].id",
        ),
        (
            set_path(
                base(), "triggers", [{"id": "t", "kind": "event", "event": "x", "filter": "1 +"}]
            ),
            "triggers[0].filter",
        ),
    ],
)
def test_trigger_problems(doc: dict[str, Any], path: str) -> None:
    assert found(doc) == {(path, "VALIDATION_FAILED")}


@pytest.mark.parametrize(
    "expression",
    ["0 2 * * *", "*/15 9-17 * * MON-FRI", "0 0 1,15 JAN,jul *", "*/10 * * * * *", "0 0 * * 7"],
)
def test_good_cron_expressions(expression: str) -> None:
    assert cron_problem(expression) is None


@pytest.mark.parametrize(
    "expression",
    ["", "@daily", "a b c d e", "1¹ * * * *", "0 0 30 2 *", "0 0 0 31 4 *", "* * * * * * *"],
)
def test_cron_that_is_malformed_or_never_fires_is_refused(expression: str) -> None:
    assert cron_problem(expression) is not None


def test_an_oversized_document_is_refused_before_anything_else() -> None:
    doc = base()
    doc["nodes"].append({"id": "BAD", "type": "nope", "description": "x" * 500})
    assert found(doc, limits=Limits(max_bytes=300)) == {("$", "PAYLOAD_TOO_LARGE")}


def test_a_deeply_nested_document_is_refused() -> None:
    deep: Any = "leaf"
    for _ in range(100):
        deep = [deep]
    doc = with_node({"id": "x", "type": "transform", "parameters": {"output": deep}})
    assert found(doc) == {("$", "VALIDATION_FAILED")}


# --- INVALID_NODES --------------------------------------------------------------------------


def http(**parameters: Any) -> dict[str, Any]:
    return {"id": "x", "type": "http", "parameters": {"url": "https://a.example", **parameters}}


def mapping(**parameters: Any) -> dict[str, Any]:
    return {"id": "x", "type": "map", "parameters": {"items": "trigger.data.xs", **parameters}}


NOOP_TEMPLATE = {"type": "noop"}


@pytest.mark.parametrize(
    ("node", "path"),
    [
        ({"id": "x", "type": "teleport"}, "nodes[3].type"),
        ({"id": "x"}, "nodes[3].type"),
        ("noop", "nodes[3]"),
        ({"id": "x", "type": "http", "parameters": {}}, "nodes[3].parameters.url"),
        (http(url=5), "nodes[3].parameters.url"),
        (http(verb="GET"), "nodes[3].parameters.verb"),
        (http(headers={"X": 1}), "nodes[3].parameters.headers[...]"),
        (http(method="FETCH"), "nodes[3].parameters.method"),
        (http(url="ftp://a.example/x"), "nodes[3].parameters.url"),
        (http(url="/relative"), "nodes[3].parameters.url"),
        (http(expect_status=[200, 700]), "nodes[3].parameters.expect_status[1]"),
        ({"id": "X", "type": "noop"}, "nodes[3].id"),
        ({"id": "x", "type": "noop", "on_error": "retry"}, "nodes[3].on_error"),
        ({"id": "x", "type": "noop", "on_error": "fallback:x"}, "nodes[3].on_error"),
        ({"id": "x", "type": "noop", "on_error": "fallback:ghost"}, "nodes[3].on_error"),
        ({"id": "x", "type": "noop", "retry": {"max_attempts": 0}}, "nodes[3].retry.max_attempts"),
        (
            {"id": "x", "type": "noop", "retry": {"max_attempts": 101}},
            "nodes[3].retry.max_attempts",
        ),
        ({"id": "x", "type": "noop", "retry": {"initial": "PT0S"}}, "nodes[3].retry.initial"),
        ({"id": "x", "type": "noop", "retry": {"max": "-PT1S"}}, "nodes[3].retry.max"),
        (
            {"id": "x", "type": "noop", "retry": {"initial": "PT10S", "max": "PT1S"}},
            "nodes[3].retry.initial",
        ),
        ({"id": "x", "type": "noop", "timeout": "PT0S"}, "nodes[3].timeout"),
        ({"id": "x", "type": "delay", "parameters": {}}, "nodes[3].parameters"),
        (
            {
                "id": "x",
                "type": "delay",
                "parameters": {"duration": "PT1S", "until": "2030-01-01T00:00:00Z"},
            },
            "nodes[3].parameters",
        ),
        (
            {"id": "x", "type": "delay", "parameters": {"duration": "soon"}},
            "nodes[3].parameters.duration",
        ),
        (
            {"id": "x", "type": "delay", "parameters": {"duration": "-PT1S"}},
            "nodes[3].parameters.duration",
        ),
        (
            {"id": "x", "type": "delay", "parameters": {"until": "tomorrow"}},
            "nodes[3].parameters.until",
        ),
        (
            {"id": "x", "type": "delay", "parameters": {"until": "2030-01-01T00:00:00"}},
            "nodes[3].parameters.until",
        ),
        (
            {"id": "x", "type": "switch", "parameters": {"expression": "vars.region", "cases": []}},
            "nodes[3].parameters.cases",
        ),
        (
            {
                "id": "x",
                "type": "switch",
                "parameters": {"expression": "vars.region", "cases": ["a", "a"]},
            },
            "nodes[3].parameters.cases[1]",
        ),
        (
            {
                "id": "x",
                "type": "switch",
                "parameters": {"expression": "vars.region", "cases": ["default"]},
            },
            "nodes[3].parameters.cases[0]",
        ),
        (mapping(), "nodes[3].parameters"),
        (mapping(node=NOOP_TEMPLATE, workflow_id=CHILD), "nodes[3].parameters"),
        (mapping(node=NOOP_TEMPLATE, concurrency=0), "nodes[3].parameters.concurrency"),
        (mapping(workflow_id="child"), "nodes[3].parameters.workflow_id"),
        (mapping(node={"type": "rocket"}), "nodes[3].parameters.node.type"),
        (
            mapping(node={"type": "map", "parameters": {"items": "[]"}}),
            "nodes[3].parameters.node.type",
        ),
        (
            mapping(node={"type": "http", "parameters": {"url": 3}}),
            "nodes[3].parameters.node.parameters.url",
        ),
        (
            mapping(node={"type": "http", "parameters": {"url": "gopher://x"}}),
            "nodes[3].parameters.node.parameters.url",
        ),
        (
            {"id": "x", "type": "workflow", "parameters": {"workflow_id": "{{ vars.id }}"}},
            "nodes[3].parameters.workflow_id",
        ),
        (
            {"id": "x", "type": "workflow", "parameters": {"workflow_id": CHILD, "version": 0}},
            "nodes[3].parameters.version",
        ),
        (
            {"id": "x", "type": "task", "parameters": {"queue": "has space"}},
            "nodes[3].parameters.queue",
        ),
        (
            {"id": "x", "type": "task", "parameters": {"queue": "q", "timeout": "PT0S"}},
            "nodes[3].parameters.timeout",
        ),
        (
            {"id": "x", "type": "publish", "parameters": {"event": "bad..type"}},
            "nodes[3].parameters.event",
        ),
        (
            {"id": "x", "type": "wait_for_event", "parameters": {"event": ""}},
            "nodes[3].parameters.event",
        ),
        (
            {"id": "x", "type": "condition", "parameters": {"expression": "trigger.data >"}},
            "nodes[3].parameters.expression",
        ),
        (
            {"id": "x", "type": "condition", "parameters": {"expression": "1 / 0 == 1"}},
            "nodes[3].parameters.expression",
        ),
        (
            {"id": "x", "type": "transform", "parameters": {"output": {"a": ["{{ trigger.data"]}}},
            "nodes[3].parameters.output.a[0]",
        ),
        (
            {
                "id": "x",
                "type": "transform",
                "parameters": {"output": "{{ vars.region.split('-') }}"},
            },
            "nodes[3].parameters.output",
        ),
    ],
)
def test_node_problems(node: Any, path: str) -> None:
    assert found(with_node(node)) == {(path, "INVALID_NODES")}


@pytest.mark.parametrize(
    "node",
    [
        http(method="{{ vars.method }}", url="{{ vars.base }}/x"),
        {"id": "x", "type": "delay", "parameters": {"duration": "{{ vars.wait }}"}},
        {"id": "x", "type": "delay", "parameters": {"until": "2030-01-01T00:00:00+02:00"}},
        {"id": "x", "type": "publish", "parameters": {"event": "order.{{ vars.region }}"}},
        mapping(workflow_id=CHILD, concurrency=3),
        mapping(
            node={"type": "http", "parameters": {"url": "{{ item.url }}", "body": "{{ index }}"}}
        ),
    ],
)
def test_templates_stand_in_for_checked_values(node: dict[str, Any]) -> None:
    doc = with_node(node)
    doc["vars"] = {"method": "GET", "base": "https://a", "wait": "PT1S", "region": "eu"}
    assert found(doc) == set()


def test_duplicate_node_id_is_reported_at_the_second() -> None:
    doc = base()
    doc["nodes"].append({"id": "start", "type": "noop"})
    assert found(doc) == {("nodes[3].id", "INVALID_NODES")}


def test_output_must_name_a_node() -> None:
    assert found(set_path(base(), "output", "ghost")) == {("output", "INVALID_NODES")}
    assert found(set_path(base(), "output", "call")) == set()


def test_too_many_nodes() -> None:
    assert found(base(), limits=Limits(max_nodes=2)) == {("nodes", "INVALID_NODES")}


def test_an_empty_workflow() -> None:
    assert found(set_path(base(), "nodes", []) | {"edges": []}) == {("nodes", "INVALID_NODES")}


# --- INVALID_EDGES ---------------------------------------------------------------------------


def with_edge(edge: Any) -> dict[str, Any]:
    doc = base()
    doc["edges"].append(edge)
    return doc


def with_when(index: int, when: str | None) -> dict[str, Any]:
    doc = base()
    if when is None:
        del doc["edges"][index]["when"]
    else:
        doc["edges"][index]["when"] = when
    return doc


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (with_edge({"from": "ghost", "to": "call"}), "edges[2].from"),
        (with_edge({"from": "call", "to": "ghost"}), "edges[2].to"),
        (with_edge({"from": "call", "to": "call"}), "edges[2]"),
        (with_edge({"from": "start", "to": "check"}), "edges[2]"),
        (with_edge({"from": "start"}), "edges[2].to"),
        (with_edge({"from": "start", "to": "call", "label": "x"}), "edges[2].label"),
        (with_edge("start->call"), "edges[2]"),
        (with_when(0, "true"), "edges[0].when"),
        (with_when(1, None), "edges[1].when"),
        (with_when(1, "maybe"), "edges[1].when"),
        (set_path(base(), "edges", {"from": "start", "to": "check"}), "edges"),
    ],
)
def test_edge_problems(doc: dict[str, Any], path: str) -> None:
    code = "VALIDATION_FAILED" if path == "edges" else "INVALID_EDGES"
    expected = {(path, code)}
    if path == "edges":  # no edge at all: every node is an orphan too
        expected |= {(f"nodes[{i}]", "ORPHANED_NODE") for i in range(3)}
    assert found(doc) == expected


def test_switch_edges_choose_a_case_or_default() -> None:
    doc = base()
    doc["nodes"][1] = {
        "id": "check",
        "type": "switch",
        "parameters": {"expression": "vars.region", "cases": ["eu", "us"]},
    }
    doc["nodes"].append({"id": "other", "type": "noop"})
    doc["edges"][1]["when"] = "eu"
    doc["edges"].append({"from": "check", "to": "other", "when": "default"})
    assert found(doc) == set()
    doc["edges"][1]["when"] = "asia"
    del doc["edges"][2]["when"]
    assert found(doc) == {("edges[1].when", "INVALID_EDGES"), ("edges[2].when", "INVALID_EDGES")}


def test_too_many_edges() -> None:
    assert found(base(), limits=Limits(max_edges=1)) == {("edges", "INVALID_EDGES")}


# --- CIRCULAR_DEPENDENCY and ORPHANED_NODE -----------------------------------------------------


def test_a_cycle_is_named_at_its_first_edge() -> None:
    report = validate_definition(with_edge({"from": "call", "to": "start"}))
    assert [(p.path, p.code) for p in report.problems] == [("edges[0]", "CIRCULAR_DEPENDENCY")]
    assert report.problems[0].message == "cycle: start -> check -> call -> start"


def test_each_strongly_connected_component_is_reported() -> None:
    doc = with_edge({"from": "call", "to": "check"})
    doc["nodes"] += [{"id": "a", "type": "noop"}, {"id": "b", "type": "noop"}]
    doc["edges"] += [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]
    report = validate_definition(doc)
    assert {(p.path, p.message) for p in report.problems} == {
        ("edges[1]", "cycle: check -> call -> check"),
        ("edges[3]", "cycle: a -> b -> a"),
    }


def test_a_node_without_edges_is_orphaned() -> None:
    doc = base()
    doc["nodes"].append({"id": "lonely", "type": "noop"})
    assert found(doc) == {("nodes[3]", "ORPHANED_NODE")}


def test_a_fallback_needs_no_edge_and_sees_what_its_node_sees() -> None:
    doc = base()
    doc["nodes"][2]["on_error"] = "fallback:backup"
    doc["nodes"].append(
        {
            "id": "backup",
            "type": "transform",
            "parameters": {
                "output": {"a": "{{ nodes.check.output }}", "b": "{{ nodes.call.output }}"}
            },
        }
    )
    assert found(doc) == set()


def test_a_single_node_workflow_is_not_orphaned() -> None:
    assert found({"name": "one", "nodes": [{"id": "only", "type": "noop"}]}) == set()


# --- MISSING_VARIABLE and INVALID_VARIABLE_TYPE ---------------------------------------------


def condition(expression: str) -> dict[str, Any]:
    doc = base()
    doc["nodes"][1]["parameters"]["expression"] = expression
    return doc


def header(value: str) -> dict[str, Any]:
    doc = base()
    doc["nodes"][2]["parameters"]["headers"] = {"Authorization": value}
    return doc


EXPRESSION = "nodes[1].parameters.expression"
HEADER = "nodes[2].parameters.headers.Authorization"


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (condition("foo > 1"), EXPRESSION),
        (condition("nodes.ghost.output"), EXPRESSION),
        (condition("nodes.call.output.ok"), EXPRESSION),
        (condition("nodes.check.output"), EXPRESSION),
        (condition("nodes.start.status == 1"), EXPRESSION),
        (condition('"a" == trigger.body'), EXPRESSION),
        (condition("run.user == 1"), EXPRESSION),
        (condition("vars.zone == 'x'"), EXPRESSION),
        (condition("item > 1"), EXPRESSION),
        (condition("event.data.x"), EXPRESSION),
        (header("Bearer {{ secrets.lowercase }}"), HEADER),
        (header("{{ nodes.call.output }}"), HEADER),
        (header("{{ unknown }}"), HEADER),
        (
            set_path(base(), "concurrency", {"key": "nodes.start.output"}),
            "concurrency.key",
        ),
        (
            set_path(
                base(),
                "triggers",
                [{"id": "t", "kind": "event", "event": "x", "filter": "trigger.data.x"}],
            ),
            "triggers[0].filter",
        ),
    ],
)
def test_missing_variables(doc: dict[str, Any], path: str) -> None:
    assert found(doc) == {(path, "MISSING_VARIABLE")}


def test_a_secret_must_exist_when_the_secrets_are_known() -> None:
    doc = header("Bearer {{ secrets.TOKEN }}")
    assert found(doc, known_secrets=frozenset({"TOKEN"})) == set()
    assert found(doc, known_secrets=frozenset()) == {(HEADER, "MISSING_VARIABLE")}
    assert found(doc) == set()


def test_item_index_and_event_are_seen_only_where_they_exist() -> None:
    doc = with_node(
        mapping(
            node={
                "type": "wait_for_event",
                "parameters": {"event": "e", "match": "event.id == item.id && index >= 0"},
            }
        )
    )
    assert found(doc) == set()


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (condition("1 + 1"), EXPRESSION),
        (condition("'yes'"), EXPRESSION),
        (condition("size(nodes) > 0"), EXPRESSION),
        (header("{{ secrets }}"), HEADER),
        (with_node(mapping(items="'abc'", node=NOOP_TEMPLATE)), "nodes[3].parameters.items"),
        (
            with_node(
                {"id": "x", "type": "switch", "parameters": {"expression": "1.5", "cases": ["a"]}}
            ),
            "nodes[3].parameters.expression",
        ),
    ],
)
def test_wrong_types_known_before_running(doc: dict[str, Any], path: str) -> None:
    assert found(doc) == {(path, "INVALID_VARIABLE_TYPE")}


# --- everything at once ----------------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    doc = base()
    doc["nodes"][0]["type"] = "teleport"
    doc["nodes"][1]["parameters"]["expression"] = "nodes.ghost.output"
    doc["nodes"].append({"id": "lonely", "type": "noop"})
    doc["edges"].append({"from": "call", "to": "nowhere"})
    doc["triggers"] = [{"id": "t", "kind": "cron", "cron": "99 * * * *"}]
    report = validate_definition(doc)
    assert found(doc) == {
        ("nodes[0].type", "INVALID_NODES"),
        (EXPRESSION, "MISSING_VARIABLE"),
        ("nodes[3]", "ORPHANED_NODE"),
        ("edges[2].to", "INVALID_EDGES"),
        ("triggers[0].cron", "VALIDATION_FAILED"),
    }
    assert [p.path for p in report.problems] == sorted(p.path for p in report.problems)
    assert report.definition is None
    assert not report.valid


def test_semantic_problems_keep_the_decoded_definition() -> None:
    report = validate_definition(condition("nodes.ghost.output"))
    assert not report.valid
    assert report.definition is not None


# --- properties --------------------------------------------------------------------------------


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]]]:
    ids = [f"n{i}" for i in range(draw(st.integers(1, 15)))]
    pair = st.tuples(st.sampled_from(ids), st.sampled_from(ids))
    return ids, draw(st.lists(pair, max_size=40))


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_cycles_are_reported_exactly_when_graphlib_finds_one(
    graph: tuple[list[str], list[tuple[str, str]]],
) -> None:
    ids, edges = graph
    doc = {
        "name": "g",
        "nodes": [{"id": node_id, "type": "noop"} for node_id in ids],
        "edges": [{"from": a, "to": b} for a, b in edges],
    }
    report = validate_definition(doc)
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for source, target in edges:
        if source != target:  # a self edge is INVALID_EDGES, not a cycle
            sorter.add(target, source)
    try:
        sorter.prepare()
        has_cycle = False
    except graphlib.CycleError:
        has_cycle = True
    cycles = [p for p in report.problems if p.code == "CIRCULAR_DEPENDENCY"]
    assert bool(cycles) == has_cycle
    for problem in cycles:
        names = problem.message.removeprefix("cycle: ").split(" -> ")
        assert names[0] == names[-1]
        assert all(step in edges for step in itertools.pairwise(names))
    self_edges = [p for p in report.problems if p.message.endswith("to itself")]
    assert len(self_edges) == sum(1 for a, b in edges if a == b)


WORDS = [
    "name", "nodes", "edges", "triggers", "id", "type", "parameters", "from", "to", "when",
    "kind", "cron", "event", "filter", "expression", "url", "method", "on_error", "retry",
    "items", "node", "cases", "output", "vars", "concurrency", "key", "workflow_id", "queue",
    "http", "noop", "condition", "switch", "map", "delay", "duration", "timeout", "tags",
]  # fmt: skip
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(WORDS),
    st.sampled_from(["{{ nodes.a.output }}", "{{ x", "}}", "a.b", "PT1S", "fallback:a", CHILD]),
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=6), children, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_any_json_value_gets_a_report_never_an_exception(raw: Any) -> None:
    report = validate_definition(copy.deepcopy(raw))
    allowed = {code.name for code in DEFINITION_CODES}
    assert all(p.code in ErrorCode.__members__ and p.code in allowed for p in report.problems)
    assert all(p.path and p.message for p in report.problems)
    assert report.valid == (not report.problems)
    if report.valid:
        assert report.definition is not None
