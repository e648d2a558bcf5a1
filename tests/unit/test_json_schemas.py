"""flowmesh_shared.json_schemas: a tenant's JSON Schema compiled safely, problems at paths."""

from __future__ import annotations

import time

import jsonschema_rs

from flowmesh_shared.json_schemas import (
    MAX_PROBLEMS,
    CompiledSchemas,
    compile_schema,
    schema_problems,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "count": {"type": "integer"},
        "kind": {"enum": ["a", "b"]},
        "items": {"type": "array", "items": {"type": "object", "required": ["sku"]}},
    },
    "required": ["count"],
    "additionalProperties": False,
}


def _validator() -> jsonschema_rs.Validator:
    compiled = compile_schema(SCHEMA)
    assert not isinstance(compiled, str)
    return compiled


def test_problems_are_at_their_paths() -> None:
    found = schema_problems(
        _validator(), {"kind": "c", "items": [{}], "extra": 1, "more": 2}, root="input"
    )
    paths = sorted(item.path for item in found)
    assert paths == ["input.count", "input.extra", "input.items[0].sku", "input.kind", "input.more"]
    assert {item.code for item in found} == {"VALIDATION_FAILED"}


def test_a_template_passes_whatever_the_schema_says_only_when_asked() -> None:
    value = {"count": "{{ trigger.data.n }}", "kind": "{{ vars.kind }}", "items": "{{ x }}"}
    assert schema_problems(_validator(), value, root="input", templates=True) == []
    strict = schema_problems(_validator(), value, root="input")
    assert sorted(item.path for item in strict) == ["input.count", "input.items", "input.kind"]
    # a missing member is missing whatever templates the others hold
    missing = schema_problems(_validator(), {"kind": "{{ x }}"}, root="input", templates=True)
    assert [item.path for item in missing] == ["input.count"]


def test_a_remote_reference_is_refused_not_fetched() -> None:
    reason = compile_schema({"$ref": "http://169.254.169.254/latest/meta-data"})
    assert isinstance(reason, str) and "169.254.169.254" in reason


def test_patterns_run_in_linear_time() -> None:
    compiled = compile_schema({"type": "string", "pattern": "^(a+)+$"})
    assert not isinstance(compiled, str)
    started = time.perf_counter()
    assert not compiled.is_valid("a" * 50_000 + "!")
    assert time.perf_counter() - started < 1.0  # a backtracking engine would not return
    # look-around needs a backtracking engine: refused as not usable
    assert isinstance(compile_schema({"type": "string", "pattern": "(?=a)a"}), str)


def test_patterns_that_take_long_to_compile_are_refused_quickly() -> None:
    """Compiling is what a pattern costs (a Unicode class repeated becomes a large
    automaton: ``\\p{L}{200}`` takes ~45 ms here), and a 64 KiB action spec holds
    hundreds of patterns: compiled where an executor runs steps, that held its loop for
    seconds. A schema's patterns together have a bounded cost, refused before compiling."""
    one = r"\p{L}{200}"
    many = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "pattern": f"{one}{i}"} for i in range(100)},
    }
    started = time.perf_counter()
    reason = compile_schema(many)
    assert time.perf_counter() - started < 0.5
    assert isinstance(reason, str) and "pattern" in reason
    keys = {"type": "object", "patternProperties": {f"{one}{i}": {} for i in range(100)}}
    assert isinstance(compile_schema(keys), str)
    nested = {"$defs": {"a": {"items": {"propertyNames": {"pattern": one}}}}}
    assert isinstance(compile_schema(nested), str)
    # what schemas usually hold passes: ASCII classes, bounded repetitions, a few \p{L}
    usual = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": r"^\p{L}[\p{L} '-]{0,30}$"},
            "slug": {"type": "string", "pattern": r"^[\w.-]{1,255}$"},
            "path": {"pattern": "^[A-Za-z0-9_-]{1,100}(/[A-Za-z0-9_-]{1,100}){0,4}$"},
            "any": {"pattern": "^.{0,1000}$"},
            "digits": {"pattern": r"^\d{1,20}$", "default": {"pattern": one}},
        },
    }
    assert not isinstance(compile_schema(usual), str)


def test_at_most_max_problems_are_reported() -> None:
    compiled = compile_schema({"type": "array", "items": {"type": "integer"}})
    assert not isinstance(compiled, str)
    found = schema_problems(compiled, ["x"] * (MAX_PROBLEMS * 3), root="input")
    assert len(found) == MAX_PROBLEMS


def test_a_too_deep_value_is_one_problem_not_a_crash() -> None:
    compiled = compile_schema(
        {"$defs": {"n": {"items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"}
    )
    assert not isinstance(compiled, str)
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    found = schema_problems(compiled, deep, root="input")
    assert len(found) <= 1  # valid, or one problem at the root


def test_compiled_schemas_are_kept_by_key_least_recently_used_out() -> None:
    cache = CompiledSchemas(2)
    first = cache.get("a", {"type": "integer"})
    assert cache.get("a", {"type": "string"}) is first  # by key, not by schema
    cache.get("b", {"type": "string"})
    cache.get("c", {"type": "string"})
    assert cache.get("a", {"type": "string"}) is not first  # "a" was dropped
    assert isinstance(cache.get("bad", {"type": 5}), str)
