"""Our error classes: codes, default messages, problems, remote errors."""

from __future__ import annotations

import pytest

from flowmesh_proto.errors import ErrorCode, ProblemItem, problem
from flowmesh_shared.errors import (
    Conflict,
    FlowmeshError,
    NotFound,
    RemoteError,
    Unavailable,
    ValidationFailed,
    code_for_status,
)
from flowmesh_shared.rpc import validation_item


def test_the_docstring_is_the_default_message() -> None:
    error = Unavailable()
    assert error.detail == "A service Flowmesh depends on is not available; try again later."
    assert str(error) == error.detail
    assert error.code is ErrorCode.UNAVAILABLE


def test_a_subclass_without_a_docstring_inherits_its_parents_message() -> None:
    class Quiet(Conflict):
        pass

    assert Quiet().detail == Conflict().detail


def test_base_error_takes_a_code_first() -> None:
    error = FlowmeshError(ErrorCode.WORKFLOW_LOCKED, "locked by ann")
    assert (error.code, error.detail) == (ErrorCode.WORKFLOW_LOCKED, "locked by ann")
    assert FlowmeshError().code is ErrorCode.INTERNAL


def test_not_found_may_narrow_its_code() -> None:
    assert NotFound("gone").code is ErrorCode.NOT_FOUND
    assert NotFound("gone", code=ErrorCode.WORKFLOW_NOT_FOUND).code is ErrorCode.WORKFLOW_NOT_FOUND


def test_to_problem_carries_code_status_errors_and_request_id() -> None:
    items = [
        ProblemItem(path="nodes[1].id", code="INVALID_NODES", message="bad id"),
        ProblemItem(path="edges[0].to", code="INVALID_EDGES", message="unknown node"),
    ]
    body = ValidationFailed("2 problems", errors=items).to_problem("req-1")
    assert (body.status, body.request_id, body.detail) == (422, "req-1", "2 problems")
    assert body.code == "INVALID_EDGES"  # the first problem by path decides
    assert [item.path for item in body.errors] == ["edges[0].to", "nodes[1].id"]


def test_remote_error_keeps_the_remote_problem() -> None:
    remote = problem(ErrorCode.WORKFLOW_NAME_TAKEN, "taken", request_id="r-9")
    error = RemoteError(remote)
    assert error.code is ErrorCode.WORKFLOW_NAME_TAKEN
    assert error.detail == "taken"
    assert error.to_problem("other") == remote
    assert RemoteError(problem(ErrorCode.CONFLICT, "x")).to_problem("mine").request_id == "mine"


def test_remote_error_with_an_unknown_code_falls_back_on_the_status() -> None:
    remote = problem(ErrorCode.CONFLICT, "x")
    odd = type(remote)(title="Odd", status=409, code="SOMETHING_NEW", code_num=4099)
    assert RemoteError(odd).code is ErrorCode.CONFLICT


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, ErrorCode.BAD_REQUEST),
        (404, ErrorCode.NOT_FOUND),
        (503, ErrorCode.UNAVAILABLE),
        (599, ErrorCode.INTERNAL),
    ],
)
def test_plain_code_for_a_status(status: int, code: ErrorCode) -> None:
    assert code_for_status(status) is code


def connect_to_database() -> None:
    try:
        raise ConnectionRefusedError("no route")
    except OSError as exc:
        raise Unavailable("PostgreSQL is not reachable") from exc


def test_driver_errors_are_chained() -> None:
    with pytest.raises(Unavailable) as caught:
        connect_to_database()
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


@pytest.mark.parametrize(
    ("message", "path"),
    [
        ("Expected `int`, got `str` - at `$.limit`", "limit"),
        (
            "Expected `int`, got `str` - at `$.nodes[2].retry.max_attempts`",
            "nodes[2].retry.max_attempts",
        ),
        ("Object contains unknown field `surprise`", "surprise"),
        ("Object contains unknown field `x` - at `$.nodes[0]`", "nodes[0].x"),
        ("Expected `object`, got `array`", ""),
    ],
)
def test_validation_messages_become_paths(message: str, path: str) -> None:
    item = validation_item(message)
    assert item.path == path
    assert item.code == "VALIDATION_FAILED"
    assert " - at " not in item.message
