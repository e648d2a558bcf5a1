"""docs/workflow-language.md: its examples are what the registry's validator says they are.

Every ```yaml block is one of three things, said by its first line:

- ``# fragment ...``: a piece of a document, not checked;
- ``# invalid: CODE`` or ``# invalid: CODE at PATH``: a document the registry refuses with
  CODE (at PATH); ``INVALID_EXPORT_FORMAT`` means it does not even parse (import's 400);
- anything else: a complete workflow, which must parse as the registry parses YAML and
  validate with no problem.

And every node type and trigger kind the catalog (``flowmesh_proto.catalog``) lists is used
by some valid example and has a section of its own, so a new type without docs fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from flowmesh_proto.catalog import NODE_TYPES, TRIGGER_KINDS
from flowmesh_proto.errors import DEFINITION_CODES, ErrorCode
from flowmesh_registry.documents import DocumentError, parse_document
from flowmesh_registry.validate import validate_definition

DOC = Path(__file__).resolve().parents[2] / "docs" / "workflow-language.md"
_BLOCK = re.compile(r"^( *)```(yaml|json)\n(.*?)^\1```", re.DOTALL | re.MULTILINE)
_INVALID = re.compile(r"#\s*invalid:\s*([A-Z_]+)(?:\s+at\s+(\S+))?\s*$")
#: Codes an ``# invalid`` example may name: the validator's, and import's parse failure.
KNOWN_CODES = frozenset(code.name for code in DEFINITION_CODES) | {"INVALID_EXPORT_FORMAT"}


class Example:
    def __init__(self, fmt: str, text: str, line: int) -> None:
        self.fmt, self.text, self.line = fmt, text, line
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        self.fragment = first.startswith("# fragment")
        found = _INVALID.match(first)
        self.invalid: tuple[str, str | None] | None = None
        if found is not None:
            self.invalid = (found.group(1), found.group(2))
        elif first.startswith("# invalid"):
            raise AssertionError(
                f"line {line}: write '# invalid: CODE' or '# invalid: CODE at PATH'"
            )

    @property
    def name(self) -> str:
        return f"{self.fmt}@{self.line}"


def _examples() -> list[Example]:
    source = DOC.read_text(encoding="utf-8")
    examples = []
    for match in _BLOCK.finditer(source):
        indent, fmt, body = match.groups()
        text = "\n".join(line.removeprefix(indent) for line in body.splitlines())
        examples.append(Example(fmt, text, source.count("\n", 0, match.start()) + 1))
    return examples


EXAMPLES = _examples()
YAML = [e for e in EXAMPLES if e.fmt == "yaml" and not e.fragment]
VALID = [e for e in YAML if e.invalid is None]
INVALID = [e for e in YAML if e.invalid is not None]
JSON = [e for e in EXAMPLES if e.fmt == "json"]


def _validate(example: Example) -> Any:
    return validate_definition(parse_document(example.text, "yaml"))


def _nodes(example: Example) -> list[dict[str, Any]]:
    document = parse_document(example.text, "yaml")
    return [n for n in document.get("nodes", []) if isinstance(n, dict)]


def test_the_document_has_examples_of_both_kinds() -> None:
    assert len(VALID) >= len(NODE_TYPES)
    assert len(INVALID) >= 5


@pytest.mark.parametrize("example", VALID, ids=[e.name for e in VALID])
def test_each_complete_example_is_a_valid_workflow(example: Example) -> None:
    document = parse_document(example.text, "yaml")
    assert isinstance(document, dict) and "nodes" in document, (
        f"line {example.line}: not a complete workflow; mark it '# fragment' if it is a piece"
    )
    report = validate_definition(document)
    problems = [(p.path, p.code, p.message) for p in report.problems]
    assert report.valid, f"line {example.line}: {problems}"


@pytest.mark.parametrize("example", INVALID, ids=[e.name for e in INVALID])
def test_each_invalid_example_fails_with_the_code_it_names(example: Example) -> None:
    assert example.invalid is not None
    code, path = example.invalid
    assert code in KNOWN_CODES, f"line {example.line}: {code} is not a definition error code"
    if code == ErrorCode.INVALID_EXPORT_FORMAT.name:
        with pytest.raises(DocumentError):
            parse_document(example.text, "yaml")
        return
    report = _validate(example)
    found = [(p.path, p.code) for p in report.problems]
    assert any(c == code and (path is None or p == path) for p, c in found), (
        f"line {example.line}: expected {code} at {path or 'any path'}, got {found}"
    )


@pytest.mark.parametrize("example", JSON, ids=[e.name for e in JSON])
def test_json_workflows_are_valid_too(example: Example) -> None:
    document = parse_document(example.text, "json")
    if isinstance(document, dict) and "nodes" in document:
        assert validate_definition(document).valid


def test_every_node_type_has_a_valid_example_and_a_section() -> None:
    used = {str(node.get("type")) for example in VALID for node in _nodes(example)}
    missing = sorted(set(NODE_TYPES) - used)
    assert not missing, f"no valid example uses the node types {missing}"
    source = DOC.read_text(encoding="utf-8")
    headings = set(re.findall(r"^### `([a-z_]+)`$", source, re.MULTILINE))
    assert set(NODE_TYPES) <= headings, f"no section for {sorted(set(NODE_TYPES) - headings)}"


def test_every_trigger_kind_has_a_valid_example() -> None:
    used = {
        str(trigger.get("kind"))
        for example in VALID
        for trigger in parse_document(example.text, "yaml").get("triggers", [])
        if isinstance(trigger, dict)
    }
    missing = sorted(set(TRIGGER_KINDS) - used)
    assert not missing, f"no valid example has a {missing} trigger"


def test_the_error_code_table_matches_the_proto() -> None:
    source = DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([A-Z_]+)` \| (\d+) \| (\d+) \|", source, re.MULTILINE)
    assert rows, "the error code table is gone"
    for name, num, status in rows:
        code = ErrorCode[name]
        assert (code.num, code.http_status) == (int(num), int(status)), name
    assert {c.name for c in DEFINITION_CODES} <= {name for name, _, _ in rows}
