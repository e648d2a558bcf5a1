"""Reading the actions a run's nodes name when the run is taken up
(flowmesh_executor.run_actions): built-ins from the library, the tenant's from the registry."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowmesh_executor.references import connector_names
from flowmesh_executor.run_actions import MAX_ASKED_AT_ONCE, read_actions
from flowmesh_proto.action_library import builtin_action
from flowmesh_proto.actions import Action, ActionGet, ActionRequest, ActionSpec
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.workflow import Definition, definition_from_builtins
from flowmesh_shared.errors import FlowmeshError

MINE = Action(
    name="crm.touch",
    version=2,
    builtin=False,
    spec=ActionSpec(
        description="d", input_schema={"type": "object"}, request=ActionRequest(path="/t")
    ),
)


def _definition(*nodes: dict[str, Any]) -> Definition:
    return definition_from_builtins({"name": "t", "nodes": list(nodes), "edges": []})


def _action(
    node_id: str, action: str, connector: str, version: int | None = None
) -> dict[str, Any]:
    parameters: dict[str, Any] = {"action": action, "connector": connector, "input": {}}
    if version is not None:
        parameters["version"] = version
    return {"id": node_id, "type": "action", "parameters": parameters}


class FakeRegistry:
    def __init__(self, *actions: Action, error: ErrorCode = ErrorCode.NOT_FOUND) -> None:
        self.actions = {(a.name, a.version): a for a in actions}
        self.asked: list[ActionGet] = []
        self.error = error

    async def get(self, request: ActionGet) -> Action:
        self.asked.append(request)
        for (name, version), action in self.actions.items():
            if name == request.name and request.version in (None, version):
                return action
        raise FlowmeshError(self.error, detail=f"no action {request.name}")


async def test_built_ins_come_from_the_library_and_the_tenants_from_the_registry() -> None:
    definition = _definition(
        _action("a", "slack.post_message", "slack"),
        _action("b", "crm.touch", "crm"),
        _action("c", "crm.touch", "crm", version=2),
        _action("d", "crm.gone", "crm"),
        _action("e", "slack.post_message", "slack", version=2),
        _action("f", "slack.unknown", "slack"),
        {
            "id": "m",
            "type": "map",
            "parameters": {
                "items": "[1]",
                "node": {
                    "type": "action",
                    "parameters": {"action": "email.send", "connector": "pm"},
                },
            },
        },
    )
    registry = FakeRegistry(MINE)
    found = await read_actions(definition, registry.get)
    assert found == {
        ("slack.post_message", None): builtin_action("slack.post_message"),
        ("email.send", None): builtin_action("email.send"),
        ("crm.touch", None): MINE,
        ("crm.touch", 2): MINE,
    }
    # reserved names are never asked of the registry; each tenant key once
    asked = sorted((a.name, a.version or 0) for a in registry.asked)
    assert asked == [("crm.gone", 0), ("crm.touch", 0), ("crm.touch", 2)]
    assert connector_names(definition) == {"slack", "crm", "pm"}


async def test_a_registry_failure_other_than_not_found_is_raised() -> None:
    registry = FakeRegistry(error=ErrorCode.UNAVAILABLE)
    with pytest.raises(FlowmeshError):
        await read_actions(_definition(_action("a", "crm.touch", "crm")), registry.get)


async def test_the_tenants_actions_are_asked_together_a_few_at_a_time() -> None:
    nodes = [
        {
            "id": f"n{i}",
            "type": "action",
            "parameters": {"action": f"crm.a{i}", "connector": "c", "input": {}},
        }
        for i in range(20)
    ]
    definition = definition_from_builtins({"name": "many", "nodes": nodes})
    now = most = 0

    async def get(request: ActionGet) -> Action:
        nonlocal now, most
        now += 1
        most = max(most, now)
        await asyncio.sleep(0.01)
        now -= 1
        if request.name == "crm.a3":
            raise FlowmeshError(ErrorCode.NOT_FOUND, "gone")
        return Action(name=request.name, version=1, builtin=False, spec=MINE.spec)

    found = await read_actions(definition, get)
    assert len(found) == 19 and ("crm.a3", None) not in found
    assert 1 < most <= MAX_ASKED_AT_ONCE
