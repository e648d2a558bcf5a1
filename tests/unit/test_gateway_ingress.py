"""The events ingress: what it takes (:func:`admit`, pure) and its bounds in flight."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
from prometheus_client import CollectorRegistry

from flowmesh_gateway.events import EventPublisher
from flowmesh_gateway.ingress import Admitted, EventIngress, IngressMetrics, admit
from flowmesh_proto.events import EventEnvelope, IngressError
from flowmesh_proto.subjects import Subjects
from tests.helpers import until

SUBJECTS = Subjects()


def body(**fields: Any) -> bytes:
    envelope = {"id": "e1", "type": "order.created", "tenant": "acme", "data": None, **fields}
    return json.dumps(envelope).encode()


def decide(payload: bytes, headers: dict[str, str] | None = None, subject: str = "") -> Any:
    return admit(
        SUBJECTS,
        subject or "fm.acme.ingress.order.created",
        headers or {},
        payload,
        max_bytes=1000,
        stream="FM_EVENTS",
    )


def test_an_event_of_its_subject_is_admitted_without_jetstream_headers() -> None:
    headers = {"Nats-Msg-Id": "acme:e1", "NATS-Rollup": "all", "traceparent": "00-ab", "x": "1"}
    admitted = decide(body(), headers)
    assert isinstance(admitted, Admitted)
    assert admitted.envelope.id == "e1" and admitted.envelope.tenant == "acme"
    assert admitted.payload == body()  # stored as the publisher wrote it
    assert admitted.headers == {"traceparent": "00-ab", "x": "1"}


def test_what_is_refused_and_why() -> None:
    cases = [
        (body(blob="x" * 1000), {}, "", 4130, "bytes"),
        (b"{", {}, "", 4200, "not an event envelope"),
        (body(tenant="globex"), {}, "", 4200, "tenant"),
        (body(type="order.other"), {}, "", 4200, "type"),
        (body(id="a b"), {}, "", 4200, "id"),
        (body(id="x" * 201), {}, "", 4200, "id"),
        (body(), {"Nats-Expected-Stream": "OTHER"}, "", 4200, "expected stream"),
        (body(), {}, "fm.rpc.ingress.order.created", 4200, "reserved"),
        (body(), {}, "fm.acme.events.order.created", 4200, "not an ingress subject"),
    ]
    for payload, headers, subject, err_code, words in cases:
        refused = decide(payload, headers, subject)
        assert isinstance(refused, IngressError), (payload[:30], headers, subject)
        assert (refused.code, refused.err_code) == (400, err_code)
        assert words in refused.description
    assert isinstance(decide(body(), {"Nats-Expected-Stream": "FM_EVENTS"}), Admitted)


@dataclass
class Sent:
    """What the ingress answered (a stand-in NATS connection)."""

    answers: dict[str, Any] = field(default_factory=dict)

    async def publish(self, subject: str, payload: bytes) -> None:
        self.answers[subject] = json.loads(payload)


class SlowStore:
    """An EventPublisher whose stores wait until let go."""

    stream = "FM_EVENTS"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.seq = 0

    async def store(
        self, envelope: EventEnvelope, payload: bytes, headers: dict[str, str]
    ) -> tuple[int, bool]:
        await self.release.wait()
        self.seq += 1
        return self.seq, True


@dataclass
class Message:
    subject: str
    data: bytes
    reply: str
    headers: dict[str, str] | None = None


async def test_a_tenants_flood_is_refused_past_its_bound_and_others_get_in() -> None:
    sent, store = Sent(), SlowStore()
    ingress = EventIngress(
        cast(Any, sent),
        SUBJECTS,
        cast(EventPublisher, store),
        IngressMetrics(CollectorRegistry()),
        max_bytes=1000,
        max_in_flight=3,
        tenant_max_in_flight=2,
    )

    def message(tenant: str, n: int) -> Any:
        payload = msgspec.json.encode(EventEnvelope(id=f"e{n}", type="t", tenant=tenant, data=None))
        return Message(f"fm.{tenant}.ingress.t", payload, f"_R_.{tenant}.{n}")

    for n in range(4):  # acme floods: two are taken, two refused at once
        await ingress._take(message("acme", n))
    await ingress._take(message("globex", 9))  # another tenant still gets in
    await ingress._take(message("initech", 9))  # past the replica's bound
    busy = {s for s, a in sent.answers.items() if a.get("error", {}).get("code") == 503}
    assert busy == {"_R_.acme.2", "_R_.acme.3", "_R_.initech.9"}
    store.release.set()
    await until(lambda: len(sent.answers) == 6, timeout=5)
    assert sent.answers["_R_.globex.9"]["stream"] == "FM_EVENTS"
    await ingress.stop(1)
