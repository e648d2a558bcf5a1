"""Where a problem is written: JSON paths to lines and columns of YAML and JSON text."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmesh_proto.errors import ProblemItem
from flowmesh_registry.documents import DocumentError, parse_document, render_document
from flowmesh_registry.locations import DocumentMap, Position, locate, split_path
from flowmesh_registry.validate import validate_definition

YAML = """\
# An order workflow.
name: order-fulfilment   # required
description: |
  Charge,
  then ship.
nodes:
  - id: charge
    type: http
    parameters:
      method: POST
      url: ftp://payments.example/charge
  - id: ship
    parameters: {queue: shipping, input: {order: "{{ trigger.data.id }}"}}
edges:
  - {from: charge, to: ship}
  - from: ship
    to: ghost
"""


def where(path: str, text: str = YAML, fmt: str = "yaml") -> tuple[int, int] | None:
    found = locate(text, fmt, path)
    return None if found is None else (found.line, found.column)


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$", []),
        ("name", ["name"]),
        ("nodes[2].parameters.url", ["nodes", 2, "parameters", "url"]),
        ("$.edges[0].from", ["edges", 0, "from"]),
        ('vars["odd key"].x', ["vars", "odd key", "x"]),
        ('vars["say \\"hi\\"]"][1]', ["vars", 'say "hi"]', 1]),
        ("parameters.headers[...]", ["parameters", "headers"]),
        ("nodes[x]", ["nodes"]),
        ("timeout-ms", ["timeout-ms"]),
    ],
)
def test_split_path(path: str, steps: list[str | int]) -> None:
    assert split_path(path) == steps


@pytest.mark.parametrize(
    ("path", "position"),
    [
        ("$", (2, 1)),  # the document starts at its first key, after the comment
        ("name", (2, 7)),
        ("description", (3, 14)),  # a block scalar starts at its indicator
        ("nodes", (6, 1)),  # a block list under a key: the key's line
        ("nodes[0]", (7, 5)),
        ("nodes[0].id", (7, 9)),
        ("nodes[0].parameters", (9, 5)),
        ("nodes[0].parameters.url", (11, 12)),
        ("nodes[1].type", (12, 5)),  # missing: the node itself
        ("nodes[1].parameters.queue", (13, 25)),  # inside a flow mapping
        ("nodes[1].parameters.input.order", (13, 50)),
        ("edges[0].from", (15, 12)),
        ("edges[1].to", (17, 9)),
        ("edges[7]", (14, 1)),  # no such edge: the list
        ("nodes[0].parameters.headers[...]", (9, 5)),
        ("unknown.deeper", (2, 1)),  # nothing written: the document
    ],
)
def test_yaml_paths(path: str, position: tuple[int, int]) -> None:
    assert where(path) == position


def test_located_lines_hold_what_they_name() -> None:
    lines = YAML.splitlines()
    assert "ftp://" in lines[where("nodes[0].parameters.url")[0] - 1]  # type: ignore[index]
    assert "ghost" in lines[where("edges[1].to")[0] - 1]  # type: ignore[index]


JSON = """{
\t"name": "order-fulfilment",
\t"nodes": [
\t\t{"id": "charge", "type": "http", "parameters": {"url": "ftp://x"}},
\t\t{"id": "ship"}
\t],
\t"edges": [{"from": "charge", "to": "ghost"}]
}
"""


@pytest.mark.parametrize(
    ("path", "position"),
    [
        ("$", (1, 1)),
        ("name", (2, 10)),
        ("nodes", (3, 11)),  # a flow list starts at its bracket
        ("nodes[0].parameters.url", (4, 58)),
        ("nodes[1].type", (5, 3)),
        ("edges[0].to", (7, 37)),
    ],
)
def test_json_paths(path: str, position: tuple[int, int]) -> None:
    assert where(path, JSON, "json") == position


def test_json_with_long_lines_and_unicode() -> None:
    text = json.dumps({"name": "é" * 5, "nodes": [{"id": "a", "type": "x"}]}, ensure_ascii=False)
    assert where("nodes[0].type", text, "json") == (1, text.index('"x"') + 1)


def test_unreadable_text_has_no_positions() -> None:
    assert where("name", "{not json", "json") is None
    assert where("name", "name: [", "yaml") is None
    problem = ProblemItem(path="name", code="X", message="m")
    assert DocumentMap.of("name: [", "yaml").locate([problem]) == [problem]


def test_aliases_are_refused_before_any_walk() -> None:
    bomb = "a: &a [x, x]\nb: [*a, *a]\n"
    assert where("b[0]", bomb) is None
    with pytest.raises(DocumentError):
        parse_document(bomb, "yaml")


@pytest.mark.parametrize(
    ("text", "fmt", "line", "column"),
    [
        ("name: x\nnodes: [\n", "yaml", 3, 1),
        ("name: x\n  bad: indent\n", "yaml", 2, 6),
        ("name: x\nname: y\n", "yaml", 2, 1),  # a key twice: where it is again
        ('{\n  "name": x\n}', "json", 2, 11),
        ('{"name": "é", oops}', "json", 1, 15),  # columns count characters, not bytes
        ('{"name":', "json", 1, 9),  # cut short: at the end
    ],
)
def test_syntax_errors_say_where(text: str, fmt: str, line: int, column: int) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_document(text, fmt)
    assert (caught.value.line, caught.value.column) == (line, column)


def test_validator_problems_locate_at_their_lines() -> None:
    report = validate_definition(parse_document(YAML, "yaml"))
    located = {p.path: p for p in DocumentMap.of(YAML, "yaml").locate(report.problems)}
    lines = YAML.splitlines()
    assert "ftp://" in lines[located["nodes[0].parameters.url"].line - 1]  # type: ignore[operator]
    assert "ghost" in lines[located["edges[1].to"].line - 1]  # type: ignore[operator]
    assert all(p.line is not None and p.column is not None for p in located.values())


def test_problems_without_a_line_encode_as_before() -> None:
    item = ProblemItem(path="name", code="C", message="m")
    assert msgspec.json.encode(item) == b'{"path":"name","code":"C","message":"m"}'
    placed = ProblemItem(path="name", code="C", message="m", line=2, column=7)
    assert msgspec.json.decode(msgspec.json.encode(placed), type=ProblemItem) == placed


# --- every leaf of a random document is found on a line that shows it ---------------------

KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
LEAVES = st.one_of(
    st.integers(-1000, 1000),
    st.booleans(),
    st.from_regex(r"[A-Za-z][A-Za-z0-9 ._-]{0,12}[A-Za-z0-9]", fullmatch=True),
)
DOCUMENTS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4),
        st.dictionaries(KEYS, inner, min_size=1, max_size=4),
    ),
    max_leaves=25,
).filter(lambda value: isinstance(value, dict | list))


def _leaves(value: Any, path: str = "", key: str | None = None) -> list[tuple[str, Any, Any]]:
    """(path, the mapping key that names it or None, the leaf) for every leaf."""
    if isinstance(value, dict):
        return [
            leaf
            for name, item in value.items()
            for leaf in _leaves(item, f"{path}.{name}" if path else name, name)
        ]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, f"{path}[{i}]")]
    return [(path, key, value)]


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


@settings(max_examples=60, deadline=None)
@given(document=DOCUMENTS, fmt=st.sampled_from(["yaml", "json"]))
def test_every_leaf_locates_to_its_line(document: Any, fmt: str) -> None:
    text = render_document(document, fmt)
    lines = text.splitlines()
    places = DocumentMap.of(text, fmt)
    for path, key, leaf in _leaves(document):
        found = places.position(path)
        assert isinstance(found, Position)
        line = lines[found.line - 1]
        assert _shown(leaf) in line or (key is not None and str(key) in line), (path, line)
        assert line[found.column - 1 :].startswith((_shown(leaf)[:1], '"', "'"))


def test_yaml_of_the_same_document_round_trips() -> None:
    assert parse_document(YAML, "yaml") == yaml.safe_load(YAML)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_a_problem_per_key_of_a_wide_mapping_is_placed_in_linear_time(fmt: str) -> None:
    """A viewer's validate of 12,000 unknown top-level keys (110 KB) is 12,000 problems in
    one mapping: each once scanned the mapping for its key, 5 s of the registry's CPU."""
    document = {"name": "wide", "nodes": [], "edges": [], **{f"k{i}": i for i in range(12_000)}}
    text = render_document(document, fmt)
    raw = parse_document(text, fmt)
    problems = validate_definition(raw).problems
    assert len(problems) > 12_000
    where_map = DocumentMap.of(text, fmt)
    began = time.perf_counter()
    located = where_map.locate(problems)
    assert time.perf_counter() - began < 1.5
    lines = text.split("\n")
    for problem in located:
        if problem.path.startswith("k"):
            assert problem.line is not None
            assert (
                lines[problem.line - 1]
                .lstrip()
                .startswith(f'"{problem.path}"' if fmt == "json" else problem.path)
            )


def test_a_key_written_twice_in_json_is_found_where_it_is_first_written() -> None:
    assert where("name", '{"name": 1,\n"name": 2}', "json") == (1, 10)
