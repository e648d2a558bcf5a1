"""docs/tenant-actions.md: its worked example is the OpenAPI example, a valid spec, and its
workflow is valid against that action, and refused at the path it says when broken."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec

from flowmesh_gateway.routes.actions import EXAMPLE
from flowmesh_proto.actions import Action, ActionSpec
from flowmesh_registry.validate import validate_definition
from flowmesh_registry.validation.actions import check_action_spec

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "tenant-actions.md").read_text()
BLOCKS = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", GUIDE, re.S)]


def _block(key: str) -> dict[str, Any]:
    found: dict[str, Any] = next(b for b in BLOCKS if isinstance(b, dict) and key in b)
    return found


def test_the_guides_spec_is_the_openapi_example_and_valid() -> None:
    spec = _block("input_schema")
    assert spec == EXAMPLE
    assert check_action_spec(msgspec.convert(spec, ActionSpec)) == []


def test_the_guides_workflow_is_valid_against_the_action_and_refused_when_broken() -> None:
    spec = msgspec.convert(_block("input_schema"), ActionSpec)
    action = Action(name="helpdesk.open_ticket", version=1, builtin=False, spec=spec)
    known = {("helpdesk.open_ticket", 1): action}
    workflow = _block("nodes")
    report = validate_definition(
        workflow, known_actions=known, known_connectors=frozenset({"helpdesk"})
    )
    assert report.problems == []
    workflow["nodes"][0]["parameters"]["input"]["priority"] = "high"
    report = validate_definition(
        workflow, known_actions=known, known_connectors=frozenset({"helpdesk"})
    )
    assert [p.path for p in report.problems] == ["nodes[0].parameters.input.priority"]
    assert "`nodes[0].parameters.input.priority`" in GUIDE
