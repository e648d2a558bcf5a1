"""Events are the tenant's own (DESIGN section 12) over NATS, on the committed configuration.

Two tenants' publishers (``flowmesh nats-user``) publish with nats-py as any integrating
service would; a real gateway, signed in as its user, is the ingress their accounts map
``fm.<t>.events.>`` to. A Nats-Msg-Id one tenant sets (another tenant's, bare or shaped
like ``<tenant>:<id>``) drops nothing of the other's: the event is ``(tenant of the
subject, id)`` on every path, and nothing a tenant sends reaches the stream unchecked.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError

from flowmesh_proto.subjects import stream_names
from flowmesh_shared.event_ids import EventIds
from flowmesh_shared.jetstream import StreamLimits
from tests.helpers import until
from tests.natsdeploy import (
    Deployed,
    Violations,
    deployment,
    event_body,
)

pytestmark = pytest.mark.integration

STREAM = "FM_EVENTS"
#: The largest event the test's gateways take (the tenant accounts take 1 MiB).
MAX_EVENT_BYTES = 16 * 1024


@pytest_asyncio.fixture(loop_scope="session")
async def deployed(tmp_path: Path) -> AsyncIterator[Deployed]:
    users = [("acme", "publisher"), ("globex", "publisher")]
    # Two replicas in the queue group, as a deployment runs them.
    async with deployment(tmp_path, users, gateways=2, max_body_bytes=MAX_EVENT_BYTES) as made:
        yield made


@pytest_asyncio.fixture(loop_scope="session")
async def service(deployed: Deployed) -> AsyncIterator[Client]:
    nc = await deployed.connect("registry")
    yield nc
    await nc.close()


async def stored(service: Client, subject: str) -> list[Any]:
    """Every message FM_EVENTS holds on ``subject``, oldest first."""
    js = service.jetstream()
    info = await js.stream_info(STREAM, subjects_filter=subject)
    count = (info.state.subjects or {}).get(subject, 0)
    if not count:
        return []
    sub = await js.subscribe(subject, stream=STREAM, ordered_consumer=True)
    try:
        return [await sub.next_msg(timeout=5) for _ in range(count)]
    finally:
        await sub.unsubscribe()


def ledger(service: Client) -> EventIds:
    js = service.jetstream()
    return EventIds(js, stream_names().idempotency, StreamLimits())


async def test_another_tenants_message_ids_drop_nothing(
    deployed: Deployed, service: Client
) -> None:
    acme = await deployed.connect("acme-publisher")
    globex = await deployed.connect("globex-publisher")
    event_id, event_type = f"order-{secrets.token_hex(4)}", f"order.t{secrets.token_hex(4)}"
    acme_subject, globex_subject = f"fm.acme.events.{event_type}", f"fm.globex.events.{event_type}"
    try:
        # globex sends first: acme's id as Nats-Msg-Id, bare and shaped like acme's scope,
        # and as the envelope's id.
        globex_acks = []
        for header in (event_id, f"acme:{event_id}", f"acme.events.{event_id}"):
            ack = await globex.jetstream().publish(
                globex_subject,
                event_body("globex", event_type, event_id, by="globex", header=header),
                headers={"Nats-Msg-Id": header},
            )
            globex_acks.append(ack)
        ack = await acme.jetstream().publish(
            acme_subject,
            event_body("acme", event_type, event_id, by="acme"),
            headers={"Nats-Msg-Id": event_id},
        )
        assert ack.stream == STREAM and not ack.duplicate
        copies = await stored(service, acme_subject)
        assert [json.loads(m.data)["data"]["by"] for m in copies] == ["acme"]
        assert copies[0].metadata.sequence.stream == ack.seq
        assert "Nats-Msg-Id" not in (copies[0].headers or {})
        assert await ledger(service).counted("acme", event_id) == ack.seq
        # globex's first event is globex's; its later ones repeat it (same tenant, same id).
        assert [bool(a.duplicate) for a in globex_acks] == [False, True, True]
        assert {a.seq for a in globex_acks} == {globex_acks[0].seq}
        assert len(await stored(service, globex_subject)) == 1
        assert await ledger(service).counted("globex", event_id) == globex_acks[0].seq
    finally:
        await acme.close()
        await globex.close()


async def test_a_tenants_retry_is_a_duplicate_stored_and_counted_once(
    deployed: Deployed, service: Client
) -> None:
    acme = await deployed.connect("acme-publisher")
    event_id, event_type = f"retry-{secrets.token_hex(4)}", f"order.t{secrets.token_hex(4)}"
    subject = f"fm.acme.events.{event_type}"
    try:
        js, body = acme.jetstream(), event_body("acme", event_type, event_id, n=1)
        first = await js.publish(subject, body)
        again = await js.publish(subject, body, stream=STREAM)
        assert first.stream == STREAM and not first.duplicate
        assert (again.stream, again.seq, again.duplicate) == (STREAM, first.seq, True)
        assert len(await stored(service, subject)) == 1
        assert await ledger(service).counted("acme", event_id) == first.seq
    finally:
        await acme.close()


async def test_a_plain_publish_gets_in_without_its_message_id(
    deployed: Deployed, service: Client
) -> None:
    acme = await deployed.connect("acme-publisher")
    event_id, event_type = f"core-{secrets.token_hex(4)}", f"order.t{secrets.token_hex(4)}"
    subject = f"fm.acme.events.{event_type}"
    try:
        body = event_body("acme", event_type, event_id, n=1)
        await acme.publish(subject, body, headers={"Nats-Msg-Id": event_id})
        await acme.flush()

        async def counted() -> int | None:
            return await ledger(service).counted("acme", event_id)

        seq = await until(counted, timeout=5)
        [copy] = await stored(service, subject)
        assert copy.metadata.sequence.stream == seq and copy.data == body
        assert "Nats-Msg-Id" not in (copy.headers or {})
    finally:
        await acme.close()


async def test_a_bad_or_oversized_event_is_refused_and_not_stored(
    deployed: Deployed, service: Client
) -> None:
    acme = await deployed.connect("acme-publisher")
    event_type = f"order.t{secrets.token_hex(4)}"
    subject = f"fm.acme.events.{event_type}"
    refused: list[tuple[bytes, int]] = [
        (b"not json", 4200),
        (b'{"type": "x"}', 4200),  # no id, no tenant
        (event_body("globex", event_type, "e1"), 4200),  # another tenant's event on acme's subject
        (event_body("acme", "order.other", "e2"), 4200),  # a type that is not the subject's
        (event_body("acme", event_type, "has space"), 4200),  # not an event id
        (event_body("acme", event_type, "e3", blob="x" * MAX_EVENT_BYTES), 4130),  # too large
    ]
    try:
        for body, err_code in refused:
            with pytest.raises(BadRequestError) as caught:
                await acme.jetstream().publish(subject, body)
            assert caught.value.err_code == err_code, body[:40]
        body = event_body("acme", event_type, "e4")
        with pytest.raises(APIError, match="expected stream"):
            await acme.jetstream().publish(subject, body, stream="X")
        assert await stored(service, subject) == []
        assert await ledger(service).counted("acme", "e1") is None
    finally:
        await acme.close()


async def test_a_tenant_cannot_publish_another_tenants_events(
    deployed: Deployed, service: Client
) -> None:
    violations = Violations()
    acme = await deployed.connect("acme-publisher", violations)
    event_type = f"order.t{secrets.token_hex(4)}"
    try:
        for subject in (
            f"fm.globex.events.{event_type}",  # another tenant's events
            f"fm.globex.ingress.{event_type}",  # the ingress itself, anyone's
            f"fm.acme.ingress.{event_type}",
        ):
            with pytest.raises((NatsTimeout, NoStreamResponseError)):
                await acme.request(subject, event_body("globex", event_type, "g1"), timeout=0.5)
            await until(lambda s=subject: violations.about(s), timeout=5)
        # On its own subject, an event naming another tenant is refused, not stored.
        with pytest.raises(BadRequestError, match="tenant"):
            await acme.jetstream().publish(
                f"fm.acme.events.{event_type}", event_body("globex", event_type, "g1")
            )
        for tenant in ("acme", "globex"):
            assert await stored(service, f"fm.{tenant}.events.{event_type}") == []
            assert await ledger(service).counted(tenant, "g1") is None
    finally:
        await acme.close()


def test_the_ack_is_shaped_like_jetstreams() -> None:
    """nats-py's own decoding of a publish acknowledgement reads the ingress's answer."""
    from nats.js.api import PubAck

    from flowmesh_proto.events import EventStored

    raw = json.loads(msgspec.json.encode(EventStored(stream=STREAM, seq=7, duplicate=True)))
    assert PubAck.from_response(raw) == PubAck(stream=STREAM, seq=7, duplicate=True)
    assert json.loads(msgspec.json.encode(EventStored(stream=STREAM, seq=7))) == {
        "stream": STREAM,
        "seq": 7,
    }
