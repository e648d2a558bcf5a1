"""CEL expressions and templates: compiling, static references, rendering, failures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowmesh_shared.expressions import (
    EvaluationError,
    ExpressionError,
    Template,
    compile_expression,
    evaluate,
    find_templates,
    parse_template,
    render,
)

# --- compiling --------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["1 +", "a.b(", '"open', "", "   ", "nodes[", "a ? b"])
def test_bad_syntax_is_an_expression_error(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    assert isinstance(caught.value, ValueError)
    assert caught.value.source == source


def test_compile_error_quotes_the_cel_position() -> None:
    with pytest.raises(ExpressionError, match=r"does not compile: 1:4: Syntax error"):
        compile_expression("1 +")


def test_functions_the_runtime_lacks_are_refused_at_compile_time() -> None:
    with pytest.raises(ExpressionError, match="unknown function 'split'"):
        compile_expression('"a,b".split(",")')


def test_compiling_is_cached_by_source() -> None:
    assert compile_expression("trigger.data.x + 1") is compile_expression("trigger.data.x + 1")


def test_overlong_source_is_refused_before_the_parser_sees_it() -> None:
    with pytest.raises(ExpressionError, match="longer than"):
        compile_expression("a" + ".b" * 10_000)


# --- references -------------------------------------------------------------------------


def test_references_of_the_design_example() -> None:
    refs = compile_expression(
        "nodes.charge.output.status == 200 && trigger.data.total > 1000"
    ).references
    assert refs.variables == {"nodes", "trigger"}
    assert refs.nodes == {("charge", "output")}
    assert refs.trigger_fields == {"data"}
    assert refs.whole_values == frozenset()


@pytest.mark.parametrize(
    "source",
    [
        '"nodes.fake.output" == vars.x',
        "'nodes.fake' == vars.x",
        'r"nodes.fake\\" == vars.x',
        '"""nodes.fake "quoted" """ == vars.x',
        "b'nodes.fake' == bytes(vars.x)",
        '"\\"nodes.fake" == vars.x // nodes.fake in a comment',
    ],
)
def test_names_inside_strings_and_comments_are_not_references(source: str) -> None:
    refs = compile_expression(source).references
    assert refs.nodes == frozenset()
    assert refs.variables == {"vars"}
    assert refs.vars == {"x"}


def test_index_with_a_string_literal_names_a_node() -> None:
    refs = compile_expression('nodes["charge"].output.id + nodes[\'ship\']["output"]').references
    assert refs.nodes == {("charge", "output"), ("ship", "output")}


def test_node_member_other_than_output_is_recorded() -> None:
    assert compile_expression("nodes.x.status").references.nodes == {("x", "status")}


def test_comprehension_variables_are_not_roots() -> None:
    refs = compile_expression(
        "trigger.data.items.map(item, item.price).exists(p, p > 10) && "
        "trigger.data.items.all(i, i.qty > 0) && vars.xs.filter(x, x > 1).size() > 0"
    ).references
    assert refs.variables == {"trigger", "vars"}
    assert refs.uses_macros


def test_a_comprehension_variable_used_outside_its_call_is_a_root() -> None:
    refs = compile_expression("[1, 2].map(x, x * 2) + [x]").references
    assert "x" in refs.variables


def test_whole_values_and_dynamic_indexes() -> None:
    refs = compile_expression("size(nodes) + size(secrets[vars.name])").references
    assert refs.whole_values == {"nodes", "secrets"}
    assert refs.vars == {"name"}


def test_method_on_a_root_is_a_whole_value_not_a_field() -> None:
    refs = compile_expression("trigger.size() > 0").references
    assert refs.trigger_fields == frozenset()
    assert refs.whole_values == {"trigger"}


def test_secrets_run_and_function_names() -> None:
    refs = compile_expression(
        'secrets.API_TOKEN + string(run.attempt) + secrets["OTHER"] + string(int("1"))'
    ).references
    assert refs.secrets == {"API_TOKEN", "OTHER"}
    assert refs.run_fields == {"attempt"}
    assert refs.variables == {"secrets", "run"}


def test_type_names_are_not_variables() -> None:
    assert compile_expression("type(vars.x) == int").references.variables == {"vars"}


# --- templates --------------------------------------------------------------------------


def test_single_expression_template_keeps_its_type() -> None:
    template = parse_template("  {{ trigger.data.items }} ")
    assert template.typed
    assert render(" {{ trigger.data.items }} ", {"trigger": {"data": {"items": [1, 2]}}}) == [1, 2]
    assert render("{{ 1 + 2 }}", {}) == 3


def test_interpolation_writes_json_for_non_strings() -> None:
    context = {"vars": {"name": "ada", "n": 2.0, "ok": True, "xs": [1, {"a": None}]}}
    text = "hi {{ vars.name }}: {{ vars.n }} {{ vars.ok }} {{ vars.xs }} {{ null }}"
    assert not parse_template(text).typed
    assert render(text, context) == 'hi ada: 2.0 true [1,{"a":null}] null'


def test_render_walks_nested_values_and_leaves_keys_alone() -> None:
    value = {
        "{{ keys.stay }}": ["{{ vars.a }}", {"deep": "x{{ vars.a }}"}, 3, None],
        "plain": "no template",
    }
    assert render(value, {"vars": {"a": 7}}) == {
        "{{ keys.stay }}": [7, {"deep": "x7"}, 3, None],
        "plain": "no template",
    }


def test_braces_inside_expressions_do_not_close_the_template() -> None:
    template = parse_template('{{ {"a": {"b": "}}"}} }}')
    assert template.typed
    assert render('{{ {"a": {"b": "}}"}} }}', {}) == {"a": {"b": "}}"}}
    assert render('{{ "{{" }} literal {{ "}}" }}', {}) == "{{ literal }}"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Bearer {{ secrets.X", "never closed"),
        ("a }} b", "closes no"),
        ("{{ 1 }} }}", "closes no"),
        ("{{ }}", "empty"),
        ("{{ 1 + }}", "does not compile"),
        ('{{ "}} }}', "never closed"),
    ],
)
def test_malformed_templates(text: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=reason):
        parse_template(text)


def test_find_templates_paths_and_errors() -> None:
    found = find_templates(
        {
            "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}", "X-Plain": "plain"},
            "body": {"items": [1, "x", "{{ trigger.data }}"], "odd key": "{{ 1"},
        }
    )
    paths = dict(found)
    assert set(paths) == {".headers.Authorization", ".body.items[2]", '.body["odd key"]'}
    authorization = paths[".headers.Authorization"]
    assert isinstance(authorization, Template)
    assert authorization.references.secrets == {"TOKEN"}
    assert isinstance(paths['.body["odd key"]'], ExpressionError)


# --- evaluating -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "context", "reason"),
    [
        ("1 / 0", {}, "division by zero"),
        ("missing + 1", {}, "Undefined variable"),
        ('{"a": 1}.b', {}, "no such key"),
        ('"a" + 1', {}, "Unsupported operation"),
        ("[1][3]", {}, "out of bounds"),
        ("1.0 / 0.0", {}, "not a finite number"),
        ("9223372036854775807 + 1", {}, "overflow"),
    ],
)
def test_evaluation_errors_are_wrapped(
    source: str, context: dict[str, object], reason: str
) -> None:
    with pytest.raises(EvaluationError, match=reason) as caught:
        evaluate(source, context)
    assert caught.value.source == source


def test_results_are_plain_json_values() -> None:
    started = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    context = {"run": {"started_at": started}}
    assert evaluate("run.started_at", context) == "2024-01-01T12:00:00Z"
    assert evaluate('run.started_at + duration("90m")', context) == "2024-01-01T13:30:00Z"
    assert evaluate('duration("1.5s")', {}) == "PT1.5S"
    assert evaluate('b"hi"', {}) == "aGk="
    assert evaluate('{1: true, "b": 2}', {}) == {"1": True, "b": 2}
    assert evaluate("{true: 1}", {}) == {"true": 1}
    assert evaluate("optional.of(3)", {}) == 3
    assert evaluate("optional.none()", {}) is None


def test_regex_is_cel_re2() -> None:
    assert evaluate('trigger.data.sku.matches("^A[0-9]+$")', {"trigger": {"data": {"sku": "A12"}}})
