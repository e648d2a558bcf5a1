"""Bounded expressions (DESIGN section 12): the static cost bound, the validator's refusals,
the run-time budget, and what crosses into CEL."""

from __future__ import annotations

import itertools
import time
from typing import Any

import cel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmesh_executor.actions import FailStep, RunContext, WakeAt
from flowmesh_registry.validate import Limits, validate_definition
from flowmesh_scheduler.matching import EventFilter
from flowmesh_shared.expression_cost import CostError, Polynomial, data_size, estimate
from flowmesh_shared.expressions import (
    DEFAULT_BUDGET,
    ExpressionBudgetExceeded,
    Meter,
    compile_expression,
    evaluate,
    render,
)
from flowmesh_shared.regex_cost import pattern_units
from tests.unit.engine_shell import Run, definition

#: The attack of issue 13: four nested comprehensions over a 100-item list held an executor
#: for ~23 s (and one more level would have taken ~40 minutes).
FOUR_LEVELS = (
    "trigger.data.items.map(a, trigger.data.items.map(b, trigger.data.items.map(c, "
    "trigger.data.items.exists(d, d == a + b + c))))"
)
FILTER_FOUR_LEVELS = FOUR_LEVELS.replace("trigger.data", "event.data") + ".size() > 0"
#: Allowed by validation (two levels), far too costly on a large list.
TWO_LEVELS = "trigger.data.items.map(a, trigger.data.items.map(b, a + b))"
COSTLY = "costs more than its budget"


# --- the estimator ------------------------------------------------------------------------


def test_polynomials_sum_over_a_range_as_bounds() -> None:
    x, n = Polynomial.var("x"), Polynomial.var("n")
    per_item = x * x * 3 + n + 2  # 3 x^2 + n + 2 for each element x
    total = per_item.sum_over("x", count=n, total=n * 2)
    # sum of x_i^2 <= (sum x_i)^2 = (2n)^2; the rest once per element
    assert total.at(10) == 3 * 20**2 + 10 * 10 + 2 * 10
    assert total.degree() == 2


@pytest.mark.parametrize(
    ("source", "depth"),
    [
        ("trigger.data.total > 10", 0),
        ("trigger.data.items.map(i, i.price)", 1),
        ("trigger.data.items.filter(i, i.p > 1).map(i, i.p)", 1),  # chained, not nested
        (TWO_LEVELS, 2),
        (FOUR_LEVELS, 4),
        ("[1, 2].all(x, [3].exists(y, x < y))", 2),
    ],
)
def test_nesting_counts_comprehensions_inside_comprehensions(source: str, depth: int) -> None:
    assert estimate(source).depth == depth


def test_literals_and_building_are_counted() -> None:
    cost = estimate("[1, 2, 3] + [4] + {'a': 1, 'b': 2, 'c': 3, 'd': 4}.a")
    assert (cost.literal_items, cost.builds) == (4, 2)


def test_the_work_grows_with_the_data_read_and_the_nesting() -> None:
    plain = estimate("trigger.data.customer.id")
    one = estimate("trigger.data.items.map(i, i * 2)")
    two = estimate(TWO_LEVELS)
    assert plain.work.degree() == 1
    assert one.work.degree() == 2  # map copies the list it builds at every item
    assert two.work.degree() == 3
    assert plain.units(1000) < one.units(1000) < two.units(1000)
    assert two.largest_data(DEFAULT_BUDGET) < one.largest_data(DEFAULT_BUDGET)


@pytest.mark.parametrize(
    ("source", "reads"),
    [
        ("trigger.data.customer.id + 1", {("trigger", "data", "customer", "id")}),
        ("size(trigger.data.items) > 0", {("trigger", "data", "items")}),
        ("nodes.a.output.x == vars.y", {("nodes", "a", "output", "x"), ("vars", "y")}),
        ("trigger.data['x']", {("trigger", "data")}),
        ("(trigger).data", {("trigger",)}),
        ("trigger.data.s.startsWith('a')", {("trigger", "data", "s")}),
        ("[1].map(trigger, trigger + 1)", set()),  # a bound name is no root
    ],
)
def test_reads_are_the_paths_selected_by_name(source: str, reads: set[tuple[str, ...]]) -> None:
    assert estimate(source).reads == reads


def test_a_form_the_estimator_does_not_know_is_refused_not_guessed() -> None:
    with pytest.raises(CostError):
        estimate("[1].map(1, 2)")


def test_data_size_counts_values_and_text_and_stops_past_its_limit() -> None:
    # the dict, its two keys, the list and its two items, the text (1 + 32 // 16)
    assert data_size({"a": [1, 2], "b": "x" * 32}, 1000) == 1 + 2 + 3 + 3
    assert data_size(list(range(10_000)), 100) == 101


# --- validation ---------------------------------------------------------------------------


def _workflow(node: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "wf", "nodes": [node], "edges": [], **extra}


def _problems(doc: dict[str, Any], **limits: Any) -> set[tuple[str, str]]:
    report = validate_definition(doc, limits=Limits(**limits))
    return {(p.path, p.code) for p in report.problems}


COSTLY_CODE = "EXPRESSION_TOO_COSTLY"


def _node(node_id: str, type_name: str, **parameters: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_name, "parameters": parameters}


_NOOP = {"id": "n", "type": "noop"}
_EVENT_TRIGGER = {"id": "e", "kind": "event", "event": "order.created"}


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (
            _workflow(_node("t", "transform", output=f"{{{{ {FOUR_LEVELS} }}}}")),
            "nodes[0].parameters.output",
        ),
        (
            _workflow(_node("c", "condition", expression=f"size({FOUR_LEVELS}) > 0")),
            "nodes[0].parameters.expression",
        ),
        (
            _workflow(_NOOP, triggers=[{**_EVENT_TRIGGER, "filter": FILTER_FOUR_LEVELS}]),
            "triggers[0].filter",
        ),
        (
            _workflow(
                _node("w", "wait_for_event", event="x", match=FILTER_FOUR_LEVELS, timeout="PT1M")
            ),
            "nodes[0].parameters.match",
        ),
        (
            _workflow(_node("m", "map", items=FOUR_LEVELS, node={"type": "noop"})),
            "nodes[0].parameters.items",
        ),
        (
            _workflow(_NOOP, concurrency={"key": f"string(size({FOUR_LEVELS}))", "limit": 1}),
            "concurrency.key",
        ),
    ],
)
def test_four_nested_comprehensions_are_refused_where_they_stand(
    doc: dict[str, Any], path: str
) -> None:
    assert (path, COSTLY_CODE) in _problems(doc)


def test_two_levels_are_allowed_and_three_are_not() -> None:
    def transform(source: str) -> dict[str, Any]:
        return _workflow(
            {"id": "t", "type": "transform", "parameters": {"output": f"{{{{ {source} }}}}"}}
        )

    three = "trigger.data.l.map(a, trigger.data.l.map(b, trigger.data.l.map(c, a + b + c)))"
    assert _problems(transform(TWO_LEVELS)) == set()
    assert _problems(transform(three)) == {("nodes[0].parameters.output", COSTLY_CODE)}
    assert _problems(transform(three), max_comprehension_nesting=3) == set()


def test_big_literals_many_builds_and_costly_constants_are_refused() -> None:
    items = ", ".join(str(i) for i in range(600))
    constant = f"[{', '.join(str(i) for i in range(400))}]"
    sources = {
        "lit": f"[{items}]",
        "builds": " + ".join(["trigger.data.s"] * 70),
        "constant": f"{constant}.map(a, {constant}.map(b, a * b))",
    }
    nodes = [
        {"id": key, "type": "transform", "parameters": {"output": f"{{{{ {src} }}}}"}}
        for key, src in sources.items()
    ]
    doc = {
        "name": "wf",
        "nodes": nodes,
        "edges": [{"from": "lit", "to": "builds"}, {"from": "builds", "to": "constant"}],
    }
    assert _problems(doc) == {(f"nodes[{i}].parameters.output", COSTLY_CODE) for i in range(3)}
    assert ("nodes[0].parameters.output", COSTLY_CODE) not in _problems(doc, max_literal_items=600)


def test_the_message_says_what_is_too_costly() -> None:
    report = validate_definition(
        _workflow(
            {"id": "t", "type": "transform", "parameters": {"output": f"{{{{ {FOUR_LEVELS} }}}}"}}
        )
    )
    (problem,) = report.problems
    assert "nest 4 deep, at most 2" in problem.message


# --- the run-time budget --------------------------------------------------------------------


def test_an_evaluation_over_its_budget_is_refused_before_it_starts() -> None:
    context = {"trigger": {"data": {"items": list(range(3000))}}}
    started = time.perf_counter()
    with pytest.raises(ExpressionBudgetExceeded, match=COSTLY):
        evaluate(TWO_LEVELS, context)
    assert time.perf_counter() - started < 1.0  # evaluating it would take minutes
    small = {"trigger": {"data": {"items": list(range(10))}}}
    assert evaluate(TWO_LEVELS, small)[1] == list(range(1, 11))


def test_a_meter_is_spent_by_every_expression_it_is_given() -> None:
    meter = Meter(budget=200)
    context = {"trigger": {"data": {"id": 7}}}
    for _ in range(8):
        evaluate("trigger.data.id + 1", context, meter)
    assert 0 < meter.spent <= 200
    with pytest.raises(ExpressionBudgetExceeded):
        render({"a": ["{{ trigger.data.id }}"] * 20}, context, meter)


def test_only_what_is_read_crosses_into_cel() -> None:
    big = {"trigger": {"data": {"customer": {"id": 7}, "blob": ["x" * 100] * 50_000}}}
    meter = Meter()
    assert evaluate("trigger.data.customer.id", big, meter) == 7
    assert meter.spent < 20  # the 5 MB next to it is not read, nor paid for
    with pytest.raises(ExpressionBudgetExceeded):
        evaluate("size(trigger.data.blob)", big)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text("abc", max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abxy"), inner, max_size=3)
    ),
    max_leaves=12,
)
_SOURCES = [
    "trigger.data.a",
    "trigger.data.a.b",
    "has(trigger.data.a) ? trigger.data.a : 'none'",
    "has(trigger.data.a.x)",
    "trigger.data.a.x == trigger.data.b",
    "size(trigger.data)",
    "trigger.data",
    "trigger",
    "trigger.data.a.y.size()",
    "trigger.data['a']",
    "[trigger.data.a, trigger.data.b.x]",
    "trigger.data.x.map(v, v).size()",  # (a map's keys come in no fixed order)
]


@settings(max_examples=200, deadline=None)
@given(data=_JSON, source=st.sampled_from(_SOURCES))
def test_reading_only_the_paths_selected_gives_what_reading_everything_gives(
    data: Any, source: str
) -> None:
    context = {"trigger": {"kind": "api", "data": data}, "nodes": {"z": {"output": 1}}}
    try:
        expected: Any = ("ok", cel.compile(source).execute({"trigger": context["trigger"]}))
    except BaseException:  # any CEL failure: ours must fail too
        expected = ("error",)
    try:
        got: Any = ("ok", evaluate(source, context))
    except Exception:
        got = ("error",)
    if expected[0] == "ok" and got[0] == "ok":
        assert got[1] == _plain(expected[1])
    else:
        assert got[0] == expected[0]


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from(
            [
                "trigger.data.l", "[1, 2]", "{'a': 1}", "1", "'s'", "true", "null",
                "size(trigger.data.l)", "trigger.data.l.map(x, x)",
                "trigger.data.l.filter(x, x > 1)",
                "trigger.data.l.exists(x, x == 2)", "string(1)", "int('1')", "has(trigger.data.k)",
                "trigger.data.s.contains('a')", "trigger.data.s.matches('^a')", "dyn(1)",
                "trigger.data.l[0]", "trigger.data.m.k", "(1 + 2)", "-1", "!true",
            ]
        ),
        min_size=1,
        max_size=4,
    ),
    operators=st.lists(
        st.sampled_from(["+", "-", "*", "==", "!=", "<", "&&", "||", "in"]), max_size=3
    ),
)  # fmt: skip
def test_every_expression_that_compiles_has_a_cost(parts: list[str], operators: list[str]) -> None:
    source = parts[0]
    for operator, part in zip(operators, parts[1:], strict=False):
        source = f"{source} {operator} {part}"
    try:
        cel.compile(source)
    except BaseException:
        return
    cost = compile_expression(source).cost
    assert cost.units(100) >= 100  # reading the data is always counted


# --- the engine and the scheduler -------------------------------------------------------------


def test_a_step_over_its_budget_fails_with_expression_budget_exceeded() -> None:
    nodes = [{"id": "t", "type": "transform", "parameters": {"output": f"{{{{ {TWO_LEVELS} }}}}"}}]
    run = Run(definition(nodes, []), data={"items": list(range(500))})
    actions = run.decide()
    (failed,) = [a for a in actions if isinstance(a, FailStep)]
    assert failed.error_class == "ExpressionBudgetExceeded"
    assert COSTLY in failed.message


def test_a_decision_yields_once_it_has_spent_one_budget() -> None:
    ids = [f"n{i}" for i in range(6)]
    costly = "{{ trigger.data.items.map(i, i * 2) }}"
    nodes = [{"id": i, "type": "transform", "parameters": {"output": costly}} for i in ids]
    edges = [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]
    units = compile_expression(costly[3:-3]).cost.units(data_size(list(range(60)), 10**6) + 2)
    context = RunContext(expression_budget=units * 2.5)  # each node fits; three do not
    run = Run(definition(nodes, edges), context=context, data={"items": list(range(60))})
    first = run.decide()
    assert [a for a in first if isinstance(a, WakeAt)] == [WakeAt(at=run.now)]
    done = {n for n, s in run.state.nodes.items() if s.status == "succeeded"}
    assert done == {"n0", "n1", "n2"}
    while run.state.status == "running":
        run.decide()
    assert run.state.status == "succeeded"


def test_a_filter_over_its_budget_is_no_match() -> None:
    costly = EventFilter("event.data.l.map(a, event.data.l.map(b, a + b)).size() > 0")
    assert costly.matches({"data": {"l": list(range(5))}}, Meter()) == "yes"
    assert costly.matches({"data": {"l": list(range(3000))}}, Meter()) == "over_budget"
    assert costly.matches({"data": {}}, Meter()) == "no"


# --- patterns: compiling is what costs ------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "cheaper_than"),
    [("a{100}", r"\d{100}"), (r"[a-z]{100}", r".{100}"), (r"\s{10}", r"\w{10}"), ("x", r"\pL")],
)
def test_a_pattern_is_priced_by_what_it_compiles_to(pattern: str, cheaper_than: str) -> None:
    assert pattern_units(pattern) < pattern_units(cheaper_than)
    assert pattern_units(r"\w{200}") == 200 * pattern_units(r"\w")


def test_costly_patterns_and_patterns_from_data_are_refused_at_validation() -> None:
    def condition(source: str) -> dict[str, Any]:
        return _workflow(_node("c", "condition", expression=source))

    path = "nodes[0].parameters.expression"
    assert _problems(condition(r'trigger.data.sku.matches("^A[0-9]+$")')) == set()
    for source in (
        r'trigger.kind.matches("\\w{200}")',  # ~55 ms to compile, at every call
        "[" + ", ".join(["1"] * 40) + r'].exists(x, trigger.kind.matches("\\w{30}"))',
        "trigger.kind.matches(trigger.data.pattern)",  # a pattern from data: no price
        'trigger.kind.matches("(a")',  # a pattern that does not parse
    ):
        assert _problems(condition(source)) == {(path, COSTLY_CODE)}, source


def test_constant_checks_spend_one_budget_per_definition() -> None:
    nodes = [_node(f"c{i}", "condition", expression="'a' + 'b'") for i in range(40)]
    edges = [{"from": f"c{i}", "to": f"c{i + 1}", "when": "true"} for i in range(39)]
    doc = {"name": "wf", "nodes": nodes, "edges": edges}
    everything = _problems(doc)
    assert len(everything) == 40  # each is a string where a boolean is needed
    cost = compile_expression("'a' + 'b'").cost.units(0)
    assert 0 < len(_problems(doc, expression_budget=int(cost * 10))) <= 10


def test_a_budget_says_nothing_of_a_secrets_length() -> None:
    left = []
    for secret in ("short", "x" * 1000):
        meter = Meter()
        evaluate("secrets.TOKEN", {"secrets": {"TOKEN": secret}}, meter)
        left.append(meter.remaining)
    assert left[0] == left[1]
