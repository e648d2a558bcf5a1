"""Run inputs judged against a workflow's input_schema (flowmesh_gateway.inputs)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmesh_gateway.inputs import MAX_PROBLEMS, InputSchemas, InvalidInputSchema, input_path
from flowmesh_proto.errors import ErrorCode

ORDER = {
    "type": "object",
    "required": ["total", "items"],
    "additionalProperties": False,
    "properties": {
        "total": {"type": "number", "minimum": 0},
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"sku": {"type": "string"}}},
        },
        "odd key": {"type": "string"},
    },
}


def test_a_valid_input_has_no_problems() -> None:
    schemas = InputSchemas()
    assert schemas.problems(("wf", 1, "h"), ORDER, {"total": 3, "items": [{"sku": "a"}]}) == []


def test_each_problem_has_its_path_under_input() -> None:
    value: Any = {"total": -1, "items": [{"sku": "a"}, {"sku": 5}], "odd key": 1, "x": 0}
    problems = InputSchemas().problems(("wf", 1, "h"), ORDER, value)
    paths = sorted(problem.path for problem in problems)
    assert paths == ["input", "input.items[1].sku", "input.total", 'input["odd key"]']
    assert {problem.code for problem in problems} == {ErrorCode.VALIDATION_FAILED.name}
    missing = InputSchemas().problems(("wf", 1, "h"), ORDER, {"items": []})
    assert [(p.path, p.message) for p in missing] == [
        ("input.total", '"total" is a required property')
    ]


def test_input_paths() -> None:
    assert input_path([]) == "input"
    assert input_path(["a", 0, "b_1", "c-d", 'q"']) == 'input.a[0].b_1["c-d"]["q\\""]'


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "nonsense"},
        {"pattern": "("},
        5,
        {"$ref": "http://127.0.0.1:9/schema.json"},  # never fetched
        {"$ref": "#/$defs/missing"},
    ],
)
def test_a_schema_that_is_not_one_is_a_clear_422(schema: Any) -> None:
    schemas = InputSchemas()
    with pytest.raises(InvalidInputSchema) as caught:
        schemas.problems(("wf", 1, "h"), schema, {})
    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert "input_schema is not a valid JSON Schema" in caught.value.detail
    assert caught.value.errors[0].path == "input_schema"
    with pytest.raises(InvalidInputSchema):  # remembered, not compiled again
        schemas.problems(("wf", 1, "h"), {"type": "object"}, {})


def test_validators_are_cached_by_workflow_version_and_hash() -> None:
    schemas = InputSchemas(size=2)
    strict = {"type": "string"}
    assert schemas.problems(("wf", 1, "h1"), strict, 5)
    assert schemas.problems(("wf", 1, "h1"), {}, 5)  # the cached validator is used
    assert not schemas.problems(("wf", 2, "h2"), {}, 5)
    assert not schemas.problems(("wf", 3, "h3"), {}, 5)
    assert not schemas.problems(("wf", 1, "h1"), {}, 5)  # evicted: compiled again


def test_many_problems_are_capped_and_deep_inputs_do_not_crash() -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    assert len(InputSchemas().problems(("wf", 1, "h"), schema, list(range(500)))) == MAX_PROBLEMS
    deep: Any = "leaf"
    for _ in range(5000):
        deep = {"a": deep}
    recursive = {"type": "object", "properties": {"a": {"$ref": "#"}}}
    problems = InputSchemas().problems(("wf", 1, "h"), recursive, deep)
    assert len(problems) == 1 and problems[0].path.startswith("input")
    shallow = {"type": "object", "properties": {"a": {"type": "integer"}}}
    problems = InputSchemas().problems(("wf", 1, "h"), shallow, deep)
    assert [problem.path for problem in problems] == ["input"]
    assert "cannot be checked" in problems[0].message
