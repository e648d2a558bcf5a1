"""The wire contracts: tenant ids, subjects, principals, generated schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmesh_proto import registry as r
from flowmesh_proto import schemas
from flowmesh_proto.actions import Action, ActionPage, ActionPut, ActionVersions
from flowmesh_proto.connectors import Connector, ConnectorPut
from flowmesh_proto.errors import ErrorCode, ProblemItem, problem
from flowmesh_proto.ids import is_tenant_id, tenant_id_problem
from flowmesh_proto.operations import Request, reply_type
from flowmesh_proto.principal import Principal, parse_principal
from flowmesh_proto.registry import OPERATIONS
from flowmesh_proto.runs import RunEvent, RunSucceeded, run_event_decoder
from flowmesh_proto.subjects import SubjectError, Subjects, stream_names


def test_committed_schemas_are_current() -> None:
    directory = schemas.default_directory()
    wanted = schemas.render()
    present = {path.name for path in directory.glob("*.json")}
    assert present == set(wanted), "run `make schemas` and commit proto/schemas/"
    for name, text in wanted.items():
        assert (directory / name).read_text() == text, f"{name} is stale: run `make schemas`"
    definition = json.loads(wanted["workflow-definition.json"])
    assert "Definition" in json.dumps(definition)
    assert json.loads(wanted[schemas.ASYNCAPI])["asyncapi"] == "3.0.0"  # covered above too


@pytest.mark.parametrize("good", ["acme", "a1", "team-7", "0x", "a" * 63])
def test_good_tenant_ids(good: str) -> None:
    assert is_tenant_id(good)


@pytest.mark.parametrize(
    "bad",
    ["a", "a.>", "a.b", "*", ">", "A", "a_b", "-a", "rpc", "sys", "admin", "a" * 64, "", " a"],
)
def test_bad_tenant_ids(bad: str) -> None:
    assert tenant_id_problem(bad) is not None
    with pytest.raises(SubjectError):
        Subjects().run_requests(bad)


@given(st.text(max_size=70))
def test_every_accepted_tenant_id_is_one_subject_token(text: str) -> None:
    if is_tenant_id(text):
        subject = Subjects("fm").run_requests(text)
        assert subject.split(".") == ["fm", text, "requests", "runs"]


def test_subjects_of_the_contract() -> None:
    s = Subjects("fm")
    assert s.run_requests("acme") == "fm.acme.requests.runs"
    assert s.run_events("acme", "r1") == "fm.acme.runs.r1"
    assert s.events("acme", "order.created") == "fm.acme.events.order.created"
    assert s.tasks("acme", "shipping") == "fm.acme.tasks.shipping"
    assert s.control("acme", "r1") == "fm.acme.control.r1"
    assert s.workflow_changed("acme") == "fm.acme.registry.workflow.changed"
    assert s.rpc("registry", "workflow_get") == "fm.rpc.registry.workflow_get"
    names = stream_names("FM")
    assert (names.run_requests, names.registry) == ("FM_RUN_REQUESTS", "FM_REGISTRY")
    for bad in ["a.b", "*", ">", "", "a b"]:
        with pytest.raises(SubjectError):
            s.run_events("acme", bad)
    with pytest.raises(SubjectError):
        s.events("acme", "order..created")


def test_no_rpc_subject_matches_a_stream_filter() -> None:
    s = Subjects("fm")
    filters = [
        s.all_run_requests,
        s.all_run_events,
        s.all_events,
        s.all_tasks,
        s.all_workflow_changes,
    ]
    for operation in OPERATIONS:
        tokens = s.rpc("registry", operation).split(".")
        for pattern in filters:
            assert not _matches(pattern.split("."), tokens), (operation, pattern)


def test_each_request_names_its_operation_and_reply() -> None:
    # The wire names and reply types the AsyncAPI document was written with.
    assert OPERATIONS["workflow_get"] == (r.WorkflowGet, r.Workflow)
    assert OPERATIONS["apikey_verify"] == (r.ApiKeyVerify, r.ApiKeyIdentity)
    assert OPERATIONS["workflow_unlock"] == (r.WorkflowUnlock, r.Deleted)
    assert OPERATIONS["apikey_check"] == (r.ApiKeyCheck, r.ApiKeyIdentity)
    assert OPERATIONS["connector_put"] == (ConnectorPut, Connector)
    assert OPERATIONS["action_put"] == (ActionPut, Action)
    assert OPERATIONS["action_versions"] == (ActionVersions, ActionPage)
    assert len(OPERATIONS) == len({request for request, _ in OPERATIONS.values()}) == 44
    for name, (request, reply) in OPERATIONS.items():
        assert request.operation == name
        assert reply_type(request) is reply
        assert "operation" not in request.__struct_fields__  # not on the wire
    assert msgspec.json.encode(r.WorkflowGet(id="w1")) == b'{"id":"w1","version":null}'


def test_a_request_without_a_reply_type_is_refused() -> None:
    class Untyped(Request, frozen=True):  # type: ignore[type-arg]
        operation = "untyped"

    with pytest.raises(TypeError, match="does not declare its reply type"):
        reply_type(Untyped)


def _matches(pattern: list[str], tokens: list[str]) -> bool:
    for i, part in enumerate(pattern):
        if part == ">":
            return len(tokens) > i
        if i >= len(tokens) or (part != "*" and part != tokens[i]):
            return False
    return len(tokens) == len(pattern)


def test_principals() -> None:
    assert parse_principal("key:acme:k1") == Principal(kind="key", tenant="acme", name="k1")
    assert str(parse_principal("user:acme:alice")) == "user:acme:alice"
    assert parse_principal("service:gateway") == Principal(kind="service", name="gateway")
    for bad in [None, "", "key:a.>:k", "key:acme", "god:x", "service:", "x" * 400]:
        assert parse_principal(bad) is None


def test_problem_takes_code_of_first_error_by_path() -> None:
    items = [
        ProblemItem(path="nodes[1].id", code="INVALID_NODES", message="x"),
        ProblemItem(path="edges[0].to", code="INVALID_EDGES", message="y"),
    ]
    p = problem(ErrorCode.VALIDATION_FAILED, "two problems", errors=items)
    assert (p.code, p.code_num, p.status) == ("INVALID_EDGES", 4221, 422)
    assert [e.path for e in p.errors] == ["edges[0].to", "nodes[1].id"]


def test_run_events_round_trip_as_a_tagged_union() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    event = RunSucceeded(
        tenant="acme", run_id="r", workflow_id="w", version=1, at=at, output={"a": 1}
    )
    data = msgspec.json.encode(event)
    assert b'"kind":"run.succeeded"' in data
    decoded: RunEvent = run_event_decoder.decode(data)
    assert decoded == event
