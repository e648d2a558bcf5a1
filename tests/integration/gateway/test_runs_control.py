"""Run control over HTTP: execute, cancel, retry, ``?wait``. No executor runs here: the tests
read what the gateway published (run events, run requests, the run-control bucket) and, where
a run must move on, publish its events themselves as an executor would (fenced)."""

from __future__ import annotations

import asyncio
import io
import secrets
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from flowmesh_proto import headers as h
from flowmesh_proto.ids import new_id
from flowmesh_proto.msgids import idempotency_key
from flowmesh_proto.runs import (
    RunError,
    RunEvent,
    RunFailed,
    RunQueued,
    RunRequest,
    RunStarted,
    RunSucceeded,
    StepFailed,
    StepStarted,
    StepSucceeded,
    cancel_request_decoder,
    control_key,
    run_event_decoder,
    run_request_decoder,
)
from flowmesh_proto.subjects import StreamNames, Subjects
from tests.helpers import until
from tests.integration.harness import new_tenant, simple_definition, unique

from .conftest import Client, Isolated, delete_buckets, gateway_settings, started

pytestmark = pytest.mark.integration

ORDER_SCHEMA = {
    "type": "object",
    "required": ["total"],
    "properties": {
        "total": {"type": "number", "minimum": 0},
        "items": {"type": "array", "items": {"type": "string"}},
    },
}


class Bus:
    """What the gateway published, read without a consumer (the request stream is a work
    queue), and events published as an executor would: fenced on the subject's last one."""

    def __init__(self, nc: Nats, subjects: Subjects, streams: StreamNames) -> None:
        self.nc, self.js, self.subjects, self.streams = nc, nc.jetstream(), subjects, streams

    async def stored(self, stream: str, subject: str) -> list[RawStreamMsg]:
        found: list[RawStreamMsg] = []
        seq = 0
        while True:
            try:
                msg = await self.js.get_msg(stream, seq=seq + 1, subject=subject, next=True)
            except NotFoundError:
                return found
            found.append(msg)
            seq = msg.seq or 0

    async def events(self, tenant: str, run_id: str) -> list[RunEvent]:
        subject = self.subjects.run_events(tenant, run_id)
        stored = await self.stored(self.streams.run_events, subject)
        return [run_event_decoder.decode(msg.data or b"") for msg in stored]

    async def requests(self, tenant: str) -> list[tuple[RunRequest, dict[str, str]]]:
        stored = await self.stored(self.streams.run_requests, self.subjects.run_requests(tenant))
        return [(run_request_decoder.decode(m.data or b""), m.headers or {}) for m in stored]

    async def publish(self, event: RunEvent) -> None:
        subject = self.subjects.run_events(event.tenant, event.run_id)
        try:
            last = (await self.js.get_last_msg(self.streams.run_events, subject)).seq or 0
        except NotFoundError:
            last = 0
        headers = {h.EXPECTED_LAST_SUBJECT_SEQUENCE: str(last)}
        await self.js.publish(subject, msgspec.json.encode(event), headers=headers)


@pytest.fixture
def bus(nc: Nats, isolated: Isolated) -> Bus:
    return Bus(nc, isolated.subjects, isolated.streams)


@pytest_asyncio.fixture(loop_scope="session")
async def client(isolated: Isolated) -> Client:
    """A tenant of the module's own stack: no executor takes its runs."""
    return Client(isolated.http, await new_tenant(isolated.registry, "r"))


@pytest_asyncio.fixture(loop_scope="session")
async def other_client(isolated: Isolated) -> Client:
    return Client(isolated.http, await new_tenant(isolated.registry, "s"))


def base_of(queued: RunEvent) -> dict[str, Any]:
    return {
        "tenant": queued.tenant,
        "run_id": queued.run_id,
        "workflow_id": queued.workflow_id,
        "version": queued.version,
        "at": datetime.now(UTC),
    }


async def operator(client: Client) -> str:
    return await client.key("operator")


async def execute(
    client: Client, workflow_id: str, body: Any = None, query: str = "", **kwargs: Any
) -> tuple[int, Any, Any]:
    token = kwargs.pop("token", None) or await operator(client)
    path = f"/workflows/{workflow_id}/execute{query}"
    if body is None and "data" not in kwargs:
        return await client("POST", path, token=token, **kwargs)
    return await client("POST", path, token=token, json=body, **kwargs)


async def a_run(client: Client, bus: Bus, **definition: Any) -> tuple[dict[str, Any], str]:
    workflow = await client.create(unique("run"), **definition)
    status, body, _ = await execute(client, workflow["id"], {"input": {"total": 5}})
    assert status == 202, body
    await until(lambda: bus.events(client.tenant.id, body["run_id"]))
    return workflow, body["run_id"]


async def a_failed_run(client: Client, bus: Bus) -> tuple[dict[str, Any], str]:
    workflow, run_id = await a_run(client, bus)
    (queued,) = await bus.events(client.tenant.id, run_id)
    await bus.publish(RunStarted(**base_of(queued)))
    await bus.publish(StepSucceeded(**base_of(queued), node_id="prepare", output={"total": 5}))
    await bus.publish(StepStarted(**base_of(queued), node_id="big"))
    await bus.publish(
        StepFailed(**base_of(queued), node_id="big", attempt=1, error_class="Boom", message="no")
    )
    error = RunError(code="STEP_FAILED", message="big failed", node_id="big")
    await bus.publish(RunFailed(**base_of(queued), error=error))
    return workflow, run_id


# --- execute ---------------------------------------------------------------------------


async def test_execute_queues_one_run_with_its_input_and_trigger(client: Client, bus: Bus) -> None:
    workflow = await client.create(unique("exec"))
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    status, body, headers = await execute(
        client,
        workflow["id"],
        {"input": {"total": 150}},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert status == 202 and body["status"] == "queued", body
    run_id = body["run_id"]
    assert uuid.UUID(run_id).version == 7
    assert headers["Location"] == f"/api/v1/{client.tenant.id}/runs/{run_id}"

    (queued,) = await bus.events(client.tenant.id, run_id)
    assert isinstance(queued, RunQueued)
    assert (queued.workflow_id, queued.version, queued.attempt) == (workflow["id"], 1, 1)
    assert queued.input == {"total": 150} and queued.parent_run_id is None
    assert queued.trigger.kind == "api" and queued.trigger.data == {"total": 150}

    ((request, request_headers),) = await bus.requests(client.tenant.id)
    assert request.run_id == run_id and request.input == {"total": 150}
    assert request.trigger == queued.trigger and request.version == 1
    assert request_headers[h.MSG_ID] == run_id
    assert request_headers[h.TRACEPARENT].split("-")[1] == trace_id  # the trace goes on
    stored = await bus.stored(
        bus.streams.run_events, bus.subjects.run_events(client.tenant.id, run_id)
    )
    assert stored[0].headers is not None and stored[0].headers[h.MSG_ID] == f"queued:{run_id}"


async def test_execute_without_a_body_and_a_pinned_version(client: Client, bus: Bus) -> None:
    workflow = await client.create(unique("pin"))
    definition = simple_definition(workflow["name"], description="second")
    status, _, _ = await client("PUT", f"/workflows/{workflow['id']}", json=definition)
    assert status == 200
    status, body, _ = await execute(client, workflow["id"])
    assert status == 202, body
    (queued,) = await bus.events(client.tenant.id, body["run_id"])
    assert isinstance(queued, RunQueued) and queued.version == 2 and queued.input == {}
    status, body, _ = await execute(client, workflow["id"], {"version": 1, "input": {"a": 1}})
    assert status == 202, body
    (queued,) = await bus.events(client.tenant.id, body["run_id"])
    assert isinstance(queued, RunQueued) and queued.version == 1
    status, body, _ = await execute(client, workflow["id"], {"version": 99})
    assert status == 404 and "99" in body["detail"], body


async def test_the_same_idempotency_key_gives_the_same_run(client: Client, bus: Bus) -> None:
    workflow = await client.create(unique("idem"))
    token = await operator(client)
    answers = [
        await execute(
            client, workflow["id"], {"input": {"n": n}, "idempotency_key": key}, token=token
        )
        for n, key in ((1, "order-1"), (2, "order-1"), (3, "order-2"))
    ]
    assert [status for status, _, _ in answers] == [202, 202, 202]
    first, again, other = (body["run_id"] for _, body, _ in answers)
    assert first == again != other
    requests = await bus.requests(client.tenant.id)
    assert sorted(request.run_id for request, _ in requests) == sorted([first, other])
    (queued,) = await bus.events(client.tenant.id, first)
    assert isinstance(queued, RunQueued) and queued.input == {"n": 1}  # the first one's
    assert requests[0][0].idempotency_key == "order-1"
    kv = await bus.js.key_value(bus.streams.idempotency)
    keys = await kv.keys()
    assert len([k for k in keys if k.startswith(f"{client.tenant.id}.{workflow['id']}.")]) == 2


async def test_an_idempotent_start_that_failed_halfway_is_finished_by_the_next(
    client: Client, bus: Bus
) -> None:
    """The key was taken but nothing was published (the gateway lost NATS meanwhile)."""
    workflow = await client.create(unique("half"))
    orphan = str(new_id())
    kv = await bus.js.key_value(bus.streams.idempotency)
    await kv.create(idempotency_key(client.tenant.id, workflow["id"], "k"), orphan.encode())
    status, body, _ = await execute(client, workflow["id"], {"idempotency_key": "k"})
    assert status == 202 and body["run_id"] == orphan
    ((request, _),) = await bus.requests(client.tenant.id)
    assert request.run_id == orphan and len(await bus.events(client.tenant.id, orphan)) == 1


async def test_execute_refusals(client: Client) -> None:
    workflow = await client.create(unique("refuse"))
    wid = workflow["id"]
    viewer = await client.key("viewer")
    status, body, _ = await execute(client, wid, {}, token=viewer)
    assert status == 403 and body["code"] == "FORBIDDEN"
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        status, body, _ = await execute(client, missing, {})
        assert status == 404 and body["code"] == "WORKFLOW_NOT_FOUND", body
    for bad, path in (
        ({"input": {}, "extra": 1}, "$"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "k" * 256}, "idempotency_key"),
        ({"idempotency_key": 5}, "idempotency_key"),
        ({"version": 0}, "version"),
        ([], "$"),
    ):
        status, body, _ = await execute(client, wid, bad)
        assert status == 422 and body["code"] == "VALIDATION_FAILED", (bad, body)
        assert body["errors"][0]["path"] == path, (bad, body)
    status, body, _ = await execute(client, wid, data=b"{}", headers={"Content-Type": "text/plain"})
    assert status == 415
    status, body, _ = await execute(
        client, wid, data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and body["code"] == "BAD_REQUEST"

    status, _, _ = await client("PATCH", f"/workflows/{wid}", json={"enabled": False})
    assert status == 200
    status, body, _ = await execute(client, wid, {"input": {}})
    assert status == 409 and body["code"] == "WORKFLOW_DISABLED", body


async def test_an_invalid_version_is_not_executable(client: Client) -> None:
    status, _, _ = await client("PUT", "/secrets/RUN_TOKEN", json={"value": "x"})
    assert status == 200
    definition = {
        "name": unique("invalid"),
        "nodes": [
            {
                "id": "call",
                "type": "http",
                "parameters": {
                    "url": "https://x.example/",
                    "headers": {"Authorization": "Bearer {{ secrets.RUN_TOKEN }}"},
                },
            }
        ],
    }
    status, workflow, _ = await client("POST", "/workflows", json=definition)
    assert status == 201
    status, _, _ = await client("DELETE", "/secrets/RUN_TOKEN")
    assert status == 200
    status, body, _ = await execute(client, workflow["id"], {})
    assert status == 409 and body["code"] == "VALIDATION_STATUS_INVALID", body


async def test_input_is_checked_against_the_input_schema(client: Client, bus: Bus) -> None:
    workflow = await client.create(unique("schema"), input_schema=ORDER_SCHEMA)
    bad = {"input": {"total": -1, "items": ["a", 2]}}
    status, body, _ = await execute(client, workflow["id"], bad)
    assert status == 422 and body["code"] == "VALIDATION_FAILED", body
    assert [item["path"] for item in body["errors"]] == ["input.items[1]", "input.total"]
    status, body, _ = await execute(client, workflow["id"], {"input": {}})
    assert status == 422 and body["errors"][0]["path"] == "input.total"
    status, body, _ = await execute(client, workflow["id"], {"input": {"total": 3}})
    assert status == 202, body
    assert await bus.requests(client.tenant.id)

    broken = await client.create(unique("broken"), input_schema={"type": "nonsense"})
    status, body, _ = await execute(client, broken["id"], {"input": {}})
    assert status == 422 and body["errors"][0]["path"] == "input_schema", body
    assert "not a valid JSON Schema" in body["detail"]


async def test_oversize_input_is_413(
    client: Client, isolated: Isolated, jwt_keys: tuple[object, list[str]]
) -> None:
    workflow = await client.create(unique("big"))
    huge = msgspec.json.encode({"input": {"blob": "x" * (1024 * 1024 + 1)}})
    status, body, _ = await execute(
        client,
        workflow["id"],
        data=io.BytesIO(huge),
        headers={"Content-Type": "application/json"},
    )
    assert status == 413 and body["code"] == "PAYLOAD_TOO_LARGE", body
    assert "the input is" in body["detail"]
    # Under the input limit, over what NATS carries in one message (max_payload, 1 MiB).
    near = msgspec.json.encode({"input": "x" * (1024 * 1024 - 100)})
    status, body, _ = await execute(
        client, workflow["id"], data=io.BytesIO(near), headers={"Content-Type": "application/json"}
    )
    assert status == 413 and "NATS takes at most" in body["detail"], body

    _, files = jwt_keys
    settings = gateway_settings(isolated.registry, files, max_input_bytes=1000)
    async with AsyncExitStack() as stack:
        gateway = await started(settings, stack)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        url = f"http://127.0.0.1:{gateway.port}{client.prefix}/workflows/{workflow['id']}/execute"
        auth = {"Authorization": f"Bearer {client.tenant.admin_key}"}
        async with session.post(url, json={"input": "y" * 2000}, headers=auth) as resp:
            problem = await resp.json()
            assert resp.status == 413 and "the input is 2002 bytes" in problem["detail"]
        async with session.post(url, json={"input": "y" * 900}, headers=auth) as resp:
            assert resp.status == 202


# --- ?wait -----------------------------------------------------------------------------


async def test_wait_returns_the_finished_run(client: Client, bus: Bus) -> None:
    workflow = await client.create(unique("wait"))
    requests = await bus.nc.subscribe(bus.subjects.run_requests(client.tenant.id))

    async def executor() -> None:
        msg = await requests.next_msg(timeout=5)
        request = run_request_decoder.decode(msg.data)
        (queued,) = await bus.events(request.tenant, request.run_id)
        await bus.publish(RunStarted(**base_of(queued)))
        await bus.publish(StepSucceeded(**base_of(queued), node_id="prepare", output=7))
        await bus.publish(RunSucceeded(**base_of(queued), output={"answer": 42}))

    playing = asyncio.create_task(executor())
    try:
        status, body, headers = await execute(
            client, workflow["id"], {"input": {"total": 1}}, query="?wait=PT2S"
        )
        await playing
    finally:
        await requests.unsubscribe()
    assert status == 200, body
    assert body["status"] == "succeeded" and body["output"] == {"answer": 42}
    assert body["id"] in headers["Location"] and body["input"] == {"total": 1}
    assert body["trigger"] == {"kind": "api", "data": {"total": 1}}
    assert [(s["node_id"], s["status"], s["output"]) for s in body["steps"]] == [
        ("prepare", "succeeded", 7)
    ]
    assert body["metrics"]["nodes_succeeded"] == 1 and body["duration_ms"] >= 0

    again = {"input": {"total": 1}, "idempotency_key": "w"}
    status, first, _ = await execute(client, workflow["id"], again, query="?wait=PT0.1S")
    assert status == 202
    (queued,) = await bus.events(client.tenant.id, first["run_id"])
    await bus.publish(RunFailed(**base_of(queued), error=RunError(code="X", message="no")))
    status, body, _ = await execute(client, workflow["id"], again, query="?wait=PT5S")
    assert status == 200 and body["id"] == first["run_id"] and body["status"] == "failed"
    assert body["error"] == {"code": "X", "message": "no", "node_id": None}


async def test_wait_without_an_executor_is_202_in_time(client: Client) -> None:
    workflow = await client.create(unique("nowait"))
    loop = asyncio.get_running_loop()
    began = loop.time()
    status, body, _ = await execute(client, workflow["id"], {}, query="?wait=PT0.2S")
    assert status == 202 and body["status"] == "queued"
    assert 0.2 <= loop.time() - began < 2.0


async def test_a_bad_wait_is_422(client: Client) -> None:
    workflow = await client.create(unique("badwait"))
    for wait in ("soon", "5", "PT61S", "-PT1S", "P1Y", "PT"):
        status, body, _ = await execute(client, workflow["id"], {}, query=f"?wait={wait}")
        assert status == 422 and body["errors"][0]["path"] == "wait", (wait, body)


# --- cancel ----------------------------------------------------------------------------


async def test_cancel_an_active_run(client: Client, bus: Bus) -> None:
    _, run_id = await a_run(client, bus)
    control = await bus.nc.subscribe(bus.subjects.control(client.tenant.id, run_id))
    token = await operator(client)
    try:
        status, body, _ = await client(
            "POST", f"/runs/{run_id}/cancel", token=token, json={"reason": "changed my mind"}
        )
        assert status == 202 and body == {"run_id": run_id, "status": "cancelling"}
        told = cancel_request_decoder.decode((await control.next_msg(timeout=5)).data)
    finally:
        await control.unsubscribe()
    assert told.run_id == run_id and told.tenant == client.tenant.id
    assert told.reason == "changed my mind" and told.by.startswith(f"key:{client.tenant.id}:")
    kv = await bus.js.key_value(bus.streams.run_control)
    entry = await kv.get(control_key(client.tenant.id, run_id))
    assert cancel_request_decoder.decode(entry.value or b"") == told

    status, body, _ = await client("POST", f"/runs/{run_id.upper()}/cancel", token=token)
    assert status == 202, body  # no body: no reason; the id in any case


async def test_cancel_refusals(client: Client, other_client: Client, bus: Bus) -> None:
    token = await operator(client)
    for unknown in (str(new_id()), "nope", "0190f5a4-0000-7000-8000-00000000zzzz"):
        status, body, _ = await client("POST", f"/runs/{unknown}/cancel", token=token, json={})
        assert status == 404 and body["code"] == "NOT_FOUND", (unknown, body)
    _, run_id = await a_run(client, bus)
    status, body, _ = await client("POST", f"/runs/{run_id}/cancel", token=token, json={"why": "x"})
    assert status == 422, body
    status, body, _ = await other_client("POST", f"/runs/{run_id}/cancel", json={})
    assert status == 404  # another tenant's run is no run at all
    viewer = await client.key("viewer")
    status, body, _ = await client("POST", f"/runs/{run_id}/cancel", token=viewer)
    assert status == 403

    (queued,) = await bus.events(client.tenant.id, run_id)
    await bus.publish(RunSucceeded(**base_of(queued), output=1))
    status, body, _ = await client("POST", f"/runs/{run_id}/cancel", token=token)
    assert status == 409 and body["code"] == "RUN_NOT_ACTIVE", body


# --- retry -----------------------------------------------------------------------------


async def test_retry_a_failed_run(client: Client, bus: Bus) -> None:
    workflow, run_id = await a_failed_run(client, bus)
    token = await operator(client)
    status, body, headers = await client("POST", f"/runs/{run_id}/retry", token=token)
    assert status == 202 and body["status"] == "queued", body
    retry_id = body["run_id"]
    assert retry_id != run_id and headers["Location"].endswith(retry_id)
    (queued,) = await bus.events(client.tenant.id, retry_id)
    assert isinstance(queued, RunQueued)
    assert queued.trigger.kind == "retry" and queued.trigger.data == {"total": 5}
    assert (queued.parent_run_id, queued.attempt) == (run_id, 2)
    assert (queued.workflow_id, queued.version, queued.input) == (workflow["id"], 1, {"total": 5})
    requests = {request.run_id: request for request, _ in await bus.requests(client.tenant.id)}
    assert requests[retry_id].parent_run_id == run_id and requests[retry_id].attempt == 2

    await bus.publish(RunFailed(**base_of(queued), error=RunError(code="X", message="again")))
    status, body, _ = await client("POST", f"/runs/{retry_id}/retry", token=token)
    assert status == 202, body
    (third,) = await bus.events(client.tenant.id, body["run_id"])
    assert isinstance(third, RunQueued) and (third.attempt, third.parent_run_id) == (3, retry_id)


async def test_retry_refusals(client: Client, bus: Bus) -> None:
    token = await operator(client)
    status, body, _ = await client("POST", f"/runs/{new_id()}/retry", token=token)
    assert status == 404
    _, run_id = await a_run(client, bus)
    status, body, _ = await client("POST", f"/runs/{run_id}/retry", token=token)
    assert status == 409 and body["code"] == "EXECUTION_IN_PROGRESS", body
    (queued,) = await bus.events(client.tenant.id, run_id)
    await bus.publish(RunSucceeded(**base_of(queued), output=1))
    status, body, _ = await client("POST", f"/runs/{run_id}/retry", token=token)
    assert status == 409 and body["code"] == "WORKFLOW_NOT_EXECUTABLE", body
    assert "nothing to retry" in body["detail"]

    workflow, failed_id = await a_failed_run(client, bus)
    status, _, _ = await client("PATCH", f"/workflows/{workflow['id']}", json={"enabled": False})
    assert status == 200
    status, body, _ = await client("POST", f"/runs/{failed_id}/retry", token=token)
    assert status == 409 and body["code"] == "WORKFLOW_DISABLED", body
    status, _, _ = await client("DELETE", f"/workflows/{workflow['id']}")
    assert status == 204
    status, body, _ = await client("POST", f"/runs/{failed_id}/retry", token=token)
    assert status == 409 and body["code"] == "WORKFLOW_NOT_EXECUTABLE", body


async def test_jetstream_failures_are_503(
    client: Client, isolated: Isolated, nc: Nats, jwt_keys: tuple[object, list[str]]
) -> None:
    """A gateway whose stream names match no stream: every run operation is a 503 problem."""
    workflow = await client.create(unique("nostream"))
    _, files = jwt_keys
    prefix = f"FMN{secrets.token_hex(4).upper()}"
    settings = gateway_settings(isolated.registry, files, stream_prefix=prefix)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(delete_buckets, nc, prefix)
        gateway = await started(settings, stack)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        base = f"http://127.0.0.1:{gateway.port}{client.prefix}"
        auth = {"Authorization": f"Bearer {client.tenant.admin_key}"}
        for path in (
            f"/workflows/{workflow['id']}/execute",
            f"/runs/{new_id()}/cancel",
            f"/runs/{new_id()}/retry",
        ):
            async with session.post(base + path, json={}, headers=auth) as resp:
                problem = await resp.json()
                assert resp.status == 503 and problem["code"] == "UNAVAILABLE", (path, problem)
                assert "JetStream" in problem["detail"]
