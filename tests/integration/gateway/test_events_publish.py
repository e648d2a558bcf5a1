"""``POST /events``: CloudEvents-named envelopes stored on the tenant's events subject in
FM_EVENTS, each once. The module's own stack and streams."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats
from nats.js.api import RawStreamMsg

from flowmesh_proto.events import EventEnvelope, event_decoder
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_shared.jetstream import provision_streams
from tests.integration.harness import new_tenant

from .conftest import Client, Isolated
from .test_runs_control import Bus

pytestmark = pytest.mark.integration


@pytest.fixture
def bus(nc: Nats, isolated: Isolated) -> Bus:
    return Bus(nc, isolated.subjects, isolated.streams)


@pytest_asyncio.fixture(loop_scope="session")
async def client(isolated: Isolated) -> Client:
    return Client(isolated.http, await new_tenant(isolated.registry, "e"))


@pytest_asyncio.fixture(loop_scope="session")
async def other_client(isolated: Isolated) -> Client:
    return Client(isolated.http, await new_tenant(isolated.registry, "f"))


async def post(client: Client, body: object, token: str | None = None) -> tuple[int, Any, Any]:
    token = token or await client.key("operator")
    return await client("POST", "/events", token=token, json=body)


async def stored(bus: Bus, tenant: str, event_type: str) -> list[RawStreamMsg]:
    return await bus.stored(bus.streams.events, bus.subjects.events(tenant, event_type))


async def test_an_event_is_stored_on_its_subject(client: Client, bus: Bus) -> None:
    sent = {
        "id": "order-42",
        "type": "order.created",
        "source": "shop/checkout",
        "time": "2026-01-01T10:00:00+01:00",
        "data": {"total": 120, "customer": "c-1"},
    }
    status, answer, _ = await post(client, sent)
    assert (status, answer) == (202, {"id": "order-42"})
    [message] = await stored(bus, client.tenant.id, "order.created")
    assert message.subject == f"{bus.subjects.prefix}.{client.tenant.id}.events.order.created"
    # No Nats-Msg-Id: the stream's duplicate window is every tenant's (docs/events.md).
    assert "Nats-Msg-Id" not in (message.headers or {})
    envelope = event_decoder.decode(message.data or b"")
    assert envelope == EventEnvelope(
        id="order-42",
        type="order.created",
        tenant=client.tenant.id,
        source="shop/checkout",
        time=datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
        data={"total": 120, "customer": "c-1"},
    )


async def test_id_and_time_are_filled_in(client: Client, bus: Bus) -> None:
    before = datetime.now(UTC)
    status, answer, _ = await post(client, {"type": "ping", "data": None})
    assert status == 202
    made = uuid.UUID(answer["id"])
    assert made.version == 7
    [message] = await stored(bus, client.tenant.id, "ping")
    envelope = event_decoder.decode(message.data or b"")
    assert envelope.id == answer["id"] and envelope.tenant == client.tenant.id
    assert envelope.time is not None and before <= envelope.time <= datetime.now(UTC)
    assert (envelope.source, envelope.data) == ("", None)


async def test_an_event_sent_again_is_stored_once(
    client: Client, other_client: Client, bus: Bus
) -> None:
    """Once per tenant: one tenant's event ids never deduplicate another's events."""
    event = {"id": "same-id", "type": "order.paid", "data": {"n": 1}}
    for who in (client, client, client, other_client):
        status, answer, _ = await post(who, event)
        assert (status, answer) == (202, {"id": "same-id"})
    assert len(await stored(bus, client.tenant.id, "order.paid")) == 1
    assert len(await stored(bus, other_client.tenant.id, "order.paid")) == 1


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"type": "order..created", "data": 1}, "type"),
        ({"type": "order created", "data": 1}, "type"),
        ({"type": "order.>", "data": 1}, "type"),
        ({"type": "order.*", "data": 1}, "type"),
        ({"type": "order.created\n", "data": 1}, "type"),
        ({"type": "", "data": 1}, "type"),
        ({"type": "x" * 201, "data": 1}, "type"),
        ({"type": 5, "data": 1}, "type"),
        ({"data": 1}, "$"),
        ({"type": "a.b"}, "$"),
        ({"type": "a.b", "data": 1, "extra": True}, "$"),
        ({"type": "a.b", "data": 1, "id": ""}, "id"),
        ({"type": "a.b", "data": 1, "id": "has space"}, "id"),
        ({"type": "a.b", "data": 1, "id": "line\n"}, "id"),
        ({"type": "a.b", "data": 1, "id": "x" * 201}, "id"),
        ({"type": "a.b", "data": 1, "id": "nul\u0000"}, "id"),
        ({"type": "a.b", "data": 1, "id": "bell\u0007"}, "id"),
        ({"type": "a.b", "data": 1, "id": "del\u007f"}, "id"),
        ({"type": "a.b", "data": 1, "id": "é"}, "id"),
        ({"type": "a.b", "data": 1, "time": "2026-01-01T10:00:00"}, "time"),
        ({"type": "a.b", "data": 1, "time": "yesterday"}, "time"),
        ({"type": "a.b", "data": 1, "source": 3}, "source"),
    ],
)
async def test_bad_envelopes_are_422_at_their_field(
    client: Client, body: dict[str, object], path: str
) -> None:
    status, problem, _ = await post(client, body)
    assert (status, problem["code"]) == (422, "VALIDATION_FAILED"), problem
    assert [item["path"] for item in problem["errors"]] == [path], problem


async def test_size_media_type_and_syntax(client: Client) -> None:
    token = await client.key("operator")
    big = msgspec.json.encode({"type": "a.b", "data": "x" * (1024 * 1024)})
    status, problem, _ = await client(
        "POST",
        "/events",
        token=token,
        data=io.BytesIO(big),
        headers={"Content-Type": "application/json"},
    )
    assert (status, problem["code"]) == (413, "PAYLOAD_TOO_LARGE")
    status, problem, _ = await client(
        "POST", "/events", token=token, data=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert (status, problem["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    status, problem, _ = await client(
        "POST", "/events", token=token, data=b"{no", headers={"Content-Type": "application/json"}
    )
    assert (status, problem["code"]) == (400, "BAD_REQUEST")


async def test_credentials_tenant_and_role(client: Client, other_client: Client) -> None:
    event = {"type": "a.b", "data": 1}
    status, problem, _ = await client.http.request("POST", f"{client.prefix}/events", json=event)
    assert (status, problem["code"]) == (401, "UNAUTHENTICATED")
    status, problem, _ = await post(client, event, token=await client.key("viewer"))
    assert (status, problem["code"]) == (403, "FORBIDDEN")
    status, problem, _ = await post(client, event, token=other_client.tenant.admin_key)
    assert (status, problem["code"]) == (403, "TENANT_MISMATCH")


async def test_no_stream_is_503(client: Client, nc: Nats, isolated: Isolated) -> None:
    js = nc.jetstream()
    await js.delete_stream(isolated.streams.events)
    try:
        status, problem, _ = await post(client, {"type": "a.b", "data": 1})
        assert (status, problem["code"]) == (503, "UNAVAILABLE")
    finally:
        settings = isolated.registry.settings
        await provision_streams(
            js,
            Subjects(settings.subject_prefix),
            stream_names(settings.stream_prefix),
            settings.streams,
        )
    assert (await post(client, {"type": "a.b", "data": 1}))[0] == 202
