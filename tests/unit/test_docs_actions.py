"""docs/actions.md is generated from the catalog (scripts/catalog_reference.py): a stale
one fails here, and so does a parameter the catalog cannot describe."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from flowmesh_proto.entries import CatalogEntry, builtin_action_catalog, node_catalog

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    """A module of scripts/ (outside every package), loaded once."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


reference = _script("catalog_reference")


def test_actions_reference_is_current() -> None:
    committed = (ROOT / "docs" / "actions.md").read_text()
    assert committed == reference.render(), (
        f"docs/actions.md is stale: run `{reference.COMMAND}` (make docs) and commit it"
    )


@pytest.mark.parametrize(
    "entry", [*node_catalog(), *builtin_action_catalog()], ids=lambda e: f"{e.kind}:{e.name}"
)
def test_every_entry_has_a_section_and_every_parameter_a_description(
    entry: CatalogEntry,
) -> None:
    text = reference.render()
    assert f"\n### `{entry.name}`\n" in text
    for name, field in entry.parameters_schema.get("properties", {}).items():
        assert field.get("description"), f"{entry.name}.{name} has no description"


def test_each_built_in_action_says_its_connector_and_its_input() -> None:
    text = reference.render()
    section = text.partition("\n### `github.create_issue`\n")[2].partition("\n### ")[0]
    assert "base URL `https://api.github.com`" in section
    assert "auth `bearer`, secrets: `GITHUB_TOKEN`" in section
    assert "| `owner` | string | yes |" in section
    assert "type: action" in section


def test_types_read_as_people_write_them() -> None:
    assert reference.type_of({}) == "any"
    assert reference.type_of({"const": "slack.post_message"}) == '`"slack.post_message"`'
    assert reference.type_of({"enum": ["json", "jsonapi"]}) == 'one of `"json"`, `"jsonapi"`'
    assert reference.type_of({"anyOf": [{"type": "string"}, {"type": "null"}]}) == "string or null"
    assert reference.type_of({"type": "array", "items": {"type": "integer"}}) == "list of integer"
    schema = {"type": "object", "additionalProperties": {"type": "string"}}
    assert reference.type_of(schema) == "map of string"
    assert reference.type_of({"type": "string", "format": "duration"}) == "duration (ISO 8601)"
