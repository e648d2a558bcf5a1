"""Each definition error code of the contract (4220-4225), with its path, over the registry."""

from __future__ import annotations

from typing import Any

import pytest

from flowmesh_proto import registry as r
from flowmesh_shared.errors import RemoteError

from .conftest import Api, unique


def noop(node_id: str) -> dict[str, Any]:
    return {"id": node_id, "type": "noop"}


CASES: list[tuple[str, int, str, dict[str, Any]]] = [
    (
        "INVALID_NODES",
        4220,
        "nodes[0].parameters.url",
        {"nodes": [{"id": "call", "type": "http", "parameters": {"url": 5}}]},
    ),
    (
        "INVALID_EDGES",
        4221,
        "edges[0].to",
        {
            "nodes": [noop("a"), noop("b")],
            "edges": [{"from": "a", "to": "ghost"}, {"from": "a", "to": "b"}],
        },
    ),
    (
        "CIRCULAR_DEPENDENCY",
        4222,
        "edges",
        {
            "nodes": [noop("start"), noop("a"), noop("b")],
            "edges": [
                {"from": "start", "to": "a"},
                {"from": "a", "to": "b"},
                {"from": "b", "to": "a"},
            ],
        },
    ),
    (
        "ORPHANED_NODE",
        4223,
        "nodes[2]",
        {"nodes": [noop("a"), noop("b"), noop("lonely")], "edges": [{"from": "a", "to": "b"}]},
    ),
    (
        "MISSING_VARIABLE",
        4224,
        "nodes[1].parameters.expression",
        {
            "nodes": [
                noop("a"),
                {
                    "id": "check",
                    "type": "condition",
                    "parameters": {"expression": "nodes.nope.output == 1"},
                },
                noop("b"),
            ],
            "edges": [{"from": "a", "to": "check"}, {"from": "check", "to": "b", "when": "true"}],
        },
    ),
    (
        "INVALID_VARIABLE_TYPE",
        4225,
        "nodes[0].parameters.expression",
        {
            "nodes": [
                {"id": "check", "type": "condition", "parameters": {"expression": "'yes'"}},
                noop("b"),
            ],
            "edges": [{"from": "check", "to": "b", "when": "true"}],
        },
    ),
]


@pytest.mark.integration
@pytest.mark.parametrize(("code", "num", "path", "body"), CASES, ids=[c[0] for c in CASES])
async def test_each_definition_error_code(
    api: Api, code: str, num: int, path: str, body: dict[str, Any]
) -> None:
    definition = {"name": unique("broken"), **body}
    with pytest.raises(RemoteError) as caught:
        await api("workflow_create", r.WorkflowCreate(definition=definition))
    problem = caught.value.problem
    assert problem.status == 422
    assert (problem.code, problem.code_num) == (code, num)
    assert any(e.code == code and e.path.startswith(path) for e in problem.errors), problem.errors
    if code == "CIRCULAR_DEPENDENCY":
        message = next(e.message for e in problem.errors if e.code == code)
        assert "a" in message and "b" in message
    report = await api("workflow_validate", r.WorkflowValidate(definition=definition))
    assert not report.valid and any(e.code == code for e in report.errors)


@pytest.mark.integration
async def test_every_problem_at_once(api: Api) -> None:
    definition = {
        "name": unique("many"),
        "nodes": [
            {"id": "Bad Id", "type": "noop"},
            {"id": "x", "type": "teleport"},
            noop("y"),
            noop("y"),
        ],
        "edges": [{"from": "y", "to": "nowhere"}],
        "triggers": [{"id": "t", "kind": "cron", "cron": "not a cron"}],
    }
    with pytest.raises(RemoteError) as caught:
        await api("workflow_create", r.WorkflowCreate(definition=definition))
    codes = {e.code for e in caught.value.problem.errors}
    assert {"INVALID_NODES", "INVALID_EDGES", "VALIDATION_FAILED"} <= codes
    paths = [e.path for e in caught.value.problem.errors]
    assert paths == sorted(paths)
    assert caught.value.problem.code == next(
        e.code for e in caught.value.problem.errors if e.path == paths[0]
    )
