"""SSE of run events over real HTTP and NATS: replay then live, resuming at every position,
the end of a run, waiting for a run's first event, heartbeats, tenant streams, bad inputs.

A gateway of the module's own (short heartbeats and waits) on the session's registry and
streams; the tests play the executor (fenced publishes) and send no run request, so the
session's executor, if one runs, never touches these runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import msgspec
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats

from flowmesh_gateway.main import GatewayApp
from flowmesh_proto.ids import new_id, new_run_id
from flowmesh_proto.runs import RunEvent, RunSucceeded, StepLog
from flowmesh_proto.subjects import StreamNames, Subjects
from tests.helpers import until
from tests.integration.harness import Registry, new_tenant

from .conftest import Client, Http, Keys, gateway_settings, started
from .sse_client import ExecutorDouble, kind_of, run_base, script, sse

pytestmark = pytest.mark.integration

HEARTBEAT = 0.2


class Stack(msgspec.Struct, frozen=True, kw_only=True):
    base: str
    session: aiohttp.ClientSession
    gateway: GatewayApp
    keys: Keys

    def url(self, path: str) -> str:
        return self.base + path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(registry: Registry, jwt_keys: tuple[Keys, list[str]]) -> AsyncIterator[Stack]:
    keys, files = jwt_keys
    settings = gateway_settings(
        registry,
        files,
        sse_heartbeat_seconds=HEARTBEAT,
        sse_write_timeout_seconds=2.0,
    )
    async with AsyncExitStack() as exits:
        gateway = await started(settings, exits)
        session = await exits.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        )
        yield Stack(
            base=f"http://127.0.0.1:{gateway.port}", session=session, gateway=gateway, keys=keys
        )


@pytest_asyncio.fixture(loop_scope="session")
async def client(stack: Stack, registry: Registry) -> Client:
    return Client(Http(stack.session, stack.base, stack.keys), await new_tenant(registry, "e"))


@pytest_asyncio.fixture(loop_scope="session")
async def other_client(stack: Stack, registry: Registry) -> Client:
    return Client(Http(stack.session, stack.base, stack.keys), await new_tenant(registry, "f"))


@pytest.fixture
def double(nc: Nats, subjects: Subjects, streams: StreamNames) -> ExecutorDouble:
    return ExecutorDouble(nc, subjects, streams)


def as_json(event: RunEvent) -> Any:
    return msgspec.json.decode(msgspec.json.encode(event))


def run_url(stack: Stack, client: Client, run_id: str, query: str = "") -> str:
    return stack.url(f"{client.prefix}/runs/{run_id}/events{query}")


async def metric(stack: Stack, name: str) -> float:
    async with stack.session.get(stack.url("/metrics")) as resp:
        text = await resp.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


# --- one run ----------------------------------------------------------------------------


async def test_past_events_then_live_ones_then_the_end(
    stack: Stack, client: Client, double: ExecutorDouble
) -> None:
    base = run_base(client.tenant.id, str(new_id()))
    events = script(base)
    seqs = await double.publish_all(events[:4])  # up to and with the steps batch
    async with sse(
        stack.session, run_url(stack, client, base["run_id"]), client.tenant.admin_key
    ) as stream:
        response = stream.response
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        assert response.headers["X-Request-Id"]
        past = await stream.events(4)
        assert [(e.id, e.kind) for e in past] == list(zip(seqs, map(kind_of, events), strict=False))
        assert [e.data for e in past] == [as_json(event) for event in events[:4]]
        batch = past[3]  # several step events, one stream sequence, one SSE event
        assert batch.kind == "steps"
        assert [step["kind"] for step in batch.data["events"]] == [
            "step.succeeded",
            "step.started",
            "step.log",
        ]
        for event in events[4:]:
            seq = await double.publish(event)
            (live,) = await stream.events(1)
            assert (live.id, live.kind, live.data) == (seq, kind_of(event), as_json(event))
        assert await stream.rest(timeout=3) == []  # the response ends after run.succeeded
        assert stream.ended


async def test_a_finished_run_is_replayed_and_ends_at_once(
    stack: Stack, client: Client, double: ExecutorDouble
) -> None:
    base = run_base(client.tenant.id, str(new_id()))
    seqs = await double.publish_all(script(base))
    viewer = await client.key("viewer")
    began = time.monotonic()
    async with sse(stack.session, run_url(stack, client, base["run_id"]), viewer) as stream:
        assert [e.id for e in await stream.rest(timeout=3)] == seqs
    assert time.monotonic() - began < HEARTBEAT * 5  # no waiting for a heartbeat or more


async def test_resuming_at_every_position_of_a_finished_run(
    stack: Stack, client: Client, double: ExecutorDouble
) -> None:
    base = run_base(client.tenant.id, str(new_id()))
    events = script(base)
    seqs = await double.publish_all(events)
    url = run_url(stack, client, base["run_id"])
    key = client.tenant.admin_key
    for position in range(len(seqs)):
        seen = {} if position == 0 else {"Last-Event-ID": str(seqs[position - 1])}
        async with sse(stack.session, url, key, seen) as stream:
            rest = await stream.rest(timeout=3)
        assert [(e.id, e.kind) for e in rest] == [
            (seq, kind_of(event)) for seq, event in zip(seqs, events, strict=True)
        ][position:], position
        if position:  # the query parameter, for a first connect, does the same
            query = f"?last_event_id={seqs[position - 1]}"
            async with sse(stack.session, run_url(stack, client, base["run_id"], query), key) as s:
                assert [e.id for e in await s.rest(timeout=3)] == seqs[position:]
    # Having seen the terminal event: 204, which tells an EventSource to stop reconnecting.
    for seen in ({"Last-Event-ID": str(seqs[-1])}, {"Last-Event-ID": str(seqs[-1] + 1000)}):
        status, body, _ = await client("GET", f"/runs/{base['run_id']}/events", headers=seen)
        assert (status, body) == (204, b"")
    # The header (what a reconnecting EventSource sends) wins over the query parameter.
    query = f"?last_event_id={seqs[0]}"
    async with sse(
        stack.session,
        run_url(stack, client, base["run_id"], query),
        key,
        {"Last-Event-ID": str(seqs[4])},
    ) as stream:
        assert [e.id for e in await stream.rest(timeout=3)] == seqs[5:]
    async with sse(stack.session, url, key, {"Last-Event-ID": "0"}) as stream:
        assert [e.id for e in await stream.rest(timeout=3)] == seqs


async def test_reconnecting_after_every_event_of_a_live_run_loses_and_repeats_nothing(
    stack: Stack, client: Client, double: ExecutorDouble
) -> None:
    """Half of the events are published while the client is away (replayed on resume), half
    while it is connected (live): the client sees each exactly once, in order."""
    base = run_base(client.tenant.id, str(new_id()))
    url = run_url(stack, client, base["run_id"])
    seen: list[int] = []
    published: list[int] = []
    for index, event in enumerate(script(base)):
        if index % 2 == 0:
            published.append(await double.publish(event))  # while no client is connected
        headers = {"Last-Event-ID": str(seen[-1])} if seen else {}
        async with sse(stack.session, url, client.tenant.admin_key, headers) as stream:
            if index % 2 == 1:
                await until(lambda s=stream: s.response.content.total_bytes > 0, timeout=3)
                published.append(await double.publish(event))  # while it is connected
            seen.extend(e.id for e in await stream.events(1))
    assert seen == published
    status, _, _ = await client(
        "GET", f"/runs/{base['run_id']}/events", headers={"Last-Event-ID": str(seen[-1])}
    )
    assert status == 204


async def test_an_unknown_run_is_a_404_at_once_and_a_run_streams_from_its_first_event(
    stack: Stack, client: Client, double: ExecutorDouble
) -> None:
    """No open stream for a run id with no event on the tenant's own subject of it; once
    its ``run.queued`` is stored (execute answers after that), its stream works at once."""
    base = run_base(client.tenant.id, str(new_id()))
    events = script(base)
    url = run_url(stack, client, base["run_id"])
    began = time.monotonic()
    async with sse(stack.session, url, client.tenant.admin_key) as stream:
        assert stream.response.status == 404
        assert stream.response.content_type == "application/problem+json"
        body = msgspec.json.decode(await stream.response.read())
        assert body["code"] == "NOT_FOUND"
    assert time.monotonic() - began < 1.0
    seq = await double.publish(events[0])
    async with sse(stack.session, url, client.tenant.admin_key) as stream:
        assert stream.response.status == 200
        event = await asyncio.wait_for(stream.next(), 3)
        assert event is not None and (event.id, event.kind) == (seq, "run.queued")
        for event in events[1:]:
            await double.publish(event)
        assert [e.kind for e in await stream.rest(timeout=3)][-1] == "run.succeeded"


async def test_a_quiet_run_gets_heartbeats_between_events(
    stack: Stack, client: Client, double: ExecutorDouble
) -> None:
    base = run_base(client.tenant.id, str(new_id()))
    events = script(base)
    await double.publish(events[0])
    async with sse(
        stack.session, run_url(stack, client, base["run_id"]), client.tenant.admin_key
    ) as stream:
        await stream.events(1)
        before = stream.comments
        pending = asyncio.create_task(stream.next())
        began = time.monotonic()
        await until(lambda: stream.comments >= before + 3, timeout=3)
        assert time.monotonic() - began >= HEARTBEAT * 2  # every HEARTBEAT seconds, no more
        seq = await double.publish(events[1])
        event = await asyncio.wait_for(pending, 3)
        assert event is not None and event.id == seq


async def test_what_is_not_single_line_json_still_arrives_whole(
    stack: Stack, client: Client, double: ExecutorDouble
) -> None:
    """A pretty-printed event (line breaks) arrives as the same JSON; a message on the
    subject that is not a run event is skipped."""
    base = run_base(client.tenant.id, str(new_id()))
    events = script(base)
    first = await double.publish(events[0])
    log = StepLog(**base, node_id="n", message="pretty")
    pretty = await double.publish(log, json.dumps(as_json(log), indent=2).encode())
    await double.publish(log, b"\x00 not a run event")
    end = await double.publish(RunSucceeded(**base))
    async with sse(
        stack.session, run_url(stack, client, base["run_id"]), client.tenant.admin_key
    ) as stream:
        rest = await stream.rest(timeout=3)
    assert [(e.id, e.kind) for e in rest] == [
        (first, "run.queued"),
        (pretty, "step.log"),
        (end, "run.succeeded"),
    ]
    assert rest[1].data == as_json(log)


# --- the tenant's stream ------------------------------------------------------------------


async def test_the_tenant_stream_carries_every_run_from_now_on_and_never_ends(
    stack: Stack, client: Client, double: ExecutorDouble
) -> None:
    tenant = client.tenant.id
    before = await double.publish_all(script(run_base(tenant, str(new_id()))))
    url = stack.url(f"{client.prefix}/events/stream")
    async with sse(stack.session, url, await client.key("viewer")) as stream:
        await until(lambda: stream.response.content.total_bytes > 0, timeout=3)
        first = await double.publish_all(script(run_base(tenant, str(new_id()))))
        got = await stream.events(len(first))
        assert [e.id for e in got] == first and not set(first) & set(before)
        second = [await double.publish(script(run_base(tenant, str(new_id())))[0])]
        assert [e.id for e in await stream.events(1)] == second  # still open after an end


async def test_the_tenant_stream_filters_by_workflow_and_resumes_by_sequence(
    stack: Stack, client: Client, double: ExecutorDouble
) -> None:
    tenant = client.tenant.id
    mine, theirs = str(new_id()), str(new_id())
    ours = script(run_base(tenant, mine))
    others = script(run_base(tenant, theirs))
    seqs: dict[str, list[int]] = {mine: [], theirs: []}
    for a, b in zip(ours, others, strict=True):
        seqs[mine].append(await double.publish(a))
        seqs[theirs].append(await double.publish(b))
    resume_after = seqs[mine][1]
    everything = sorted(s for s in seqs[mine] + seqs[theirs] if s > resume_after)
    url = stack.url(f"{client.prefix}/events/stream")
    key = client.tenant.admin_key
    async with sse(stack.session, url, key, {"Last-Event-ID": str(resume_after)}) as stream:
        assert [e.id for e in await stream.events(len(everything))] == everything
    filtered = f"{url}?workflow_id={mine.upper()}&last_event_id={resume_after}"
    async with sse(stack.session, filtered, key) as stream:
        got = await stream.events(len(seqs[mine]) - 2)
        assert [e.id for e in got] == seqs[mine][2:]
        assert {e.data["workflow_id"] for e in got} == {mine}
        late = await double.publish(script(run_base(tenant, theirs))[0])
        again = await double.publish(script(run_base(tenant, mine))[0])
        (event,) = await stream.events(1)
        assert event.id == again and late < again  # the other workflow's was skipped


# --- tenants ------------------------------------------------------------------------------


async def test_streams_never_show_another_tenants_events(
    stack: Stack, client: Client, other_client: Client, double: ExecutorDouble
) -> None:
    ours = script(run_base(client.tenant.id, str(new_id())))
    theirs = script(run_base(other_client.tenant.id, str(new_id())))
    url = stack.url(f"{client.prefix}/events/stream")
    other_url = stack.url(f"{other_client.prefix}/events/stream")
    async with (
        sse(stack.session, url, client.tenant.admin_key) as stream,
        sse(stack.session, other_url, other_client.tenant.admin_key) as other_stream,
    ):
        await until(lambda: stream.response.content.total_bytes > 0, timeout=3)
        await until(lambda: other_stream.response.content.total_bytes > 0, timeout=3)
        mine: list[int] = []
        for a, b in zip(ours, theirs, strict=True):
            await double.publish(b)
            mine.append(await double.publish(a))
        got = await stream.events(len(mine))
        assert [e.id for e in got] == mine
        assert {e.data["tenant"] for e in got} == {client.tenant.id}
        assert {e.data["tenant"] for e in await other_stream.events(len(theirs))} == {
            other_client.tenant.id
        }
    # Another tenant's run id on our own path is a missing run: 404 at once, never a stream.
    their_run = theirs[0].run_id
    for query in ("", "?last_event_id=0"):
        began = time.monotonic()
        status, body, _ = await client("GET", f"/runs/{their_run}/events{query}")
        assert (status, body["code"]) == (404, "NOT_FOUND")
        assert time.monotonic() - began < 1.0
    their_url = run_url(stack, other_client, their_run)
    async with sse(stack.session, their_url, other_client.tenant.admin_key) as stream:
        assert stream.response.status == 200  # its own tenant still reads it, to the end
        assert [e.kind for e in await stream.rest(timeout=3)][-1] == "run.succeeded"


async def test_credentials_tenant_and_roles_come_first(
    stack: Stack, client: Client, other_client: Client, double: ExecutorDouble
) -> None:
    base = run_base(client.tenant.id, str(new_id()))
    await double.publish_all(script(base))
    paths = [f"/runs/{base['run_id']}/events", "/events/stream"]
    for path in paths:
        status, body, _ = await client.http.request("GET", client.prefix + path)
        assert (status, body["code"]) == (401, "UNAUTHENTICATED")
        status, body, _ = await client.http.request(
            "GET", client.prefix + path, token=other_client.tenant.admin_key
        )
        assert (status, body["code"]) == (403, "TENANT_MISMATCH")
    viewer = await client.key("viewer")
    async with sse(stack.session, stack.url(client.prefix + paths[0]), viewer) as stream:
        assert len(await stream.rest(timeout=3)) == 7
    async with sse(stack.session, stack.url(client.prefix + paths[1]), viewer) as stream:
        assert stream.response.status == 200


@pytest.mark.parametrize(
    ("query", "headers", "path"),
    [
        ("", {"Last-Event-ID": "abc"}, "Last-Event-ID"),
        ("", {"Last-Event-ID": "-1"}, "Last-Event-ID"),
        ("", {"Last-Event-ID": "1.5"}, "Last-Event-ID"),
        ("", {"Last-Event-ID": "99999999999999999999"}, "Last-Event-ID"),
        ("?last_event_id=x", {}, "last_event_id"),
        ("?last_event_id=-3", {}, "last_event_id"),
        ("?last_event_id=x", {"Last-Event-ID": "5"}, "last_event_id"),
    ],
)
async def test_a_bad_last_event_id_is_a_422_never_a_replay_from_the_start(
    client: Client, query: str, headers: dict[str, str], path: str
) -> None:
    run = f"/runs/{new_run_id()}/events{query}"
    for target in (run, f"/events/stream{query}"):
        status, body, response_headers = await client("GET", target, headers=headers)
        assert status == 422, body
        assert response_headers["Content-Type"].startswith("application/problem+json")
        assert body["code"] == "VALIDATION_FAILED" and body["errors"][0]["path"] == path


async def test_bad_ids_are_404_and_422(client: Client) -> None:
    for bad in ("not-a-uuid", "0190f5a4-0000-7000-8000-00000000abc", "a.b"):
        status, body, _ = await client("GET", f"/runs/{bad}/events")
        assert (status, body["code"]) == (404, "NOT_FOUND"), bad
    status, body, _ = await client("GET", "/events/stream?workflow_id=nope")
    assert (status, body["code"]) == (422, "VALIDATION_FAILED")
    assert body["errors"][0]["path"] == "workflow_id"


# --- resources ----------------------------------------------------------------------------


async def test_every_stream_ends_with_its_consumer_gone(
    stack: Stack, client: Client, double: ExecutorDouble
) -> None:
    """Whatever ends a stream (the run's end, the client leaving), its JetStream consumer
    goes, and the open-streams gauge comes back down; an unknown run opens none."""
    tenant = client.tenant.id
    base = run_base(tenant, str(new_id()))
    events = script(base)
    await double.publish(events[0])
    key = client.tenant.admin_key
    gauge = "flowmesh_sse_streams{"
    await until(lambda: _equals(metric(stack, gauge), 0), timeout=5)  # earlier tests' closed
    async with AsyncExitStack() as streams:
        run = await streams.enter_async_context(
            sse(stack.session, run_url(stack, client, base["run_id"]), key)
        )
        left = await streams.enter_async_context(
            sse(stack.session, stack.url(f"{client.prefix}/events/stream"), key)
        )
        nothing = await streams.enter_async_context(
            sse(stack.session, run_url(stack, client, str(new_run_id())), key)
        )
        assert nothing.response.status == 404
        for stream in (run, left):
            await until(lambda s=stream: s.response.content.total_bytes > 0, timeout=3)
        assert await double.consumers_on(tenant) == 2
        assert await metric(stack, gauge) == 2
        left.response.close()  # the client goes away
        await double.publish_all(events[1:])
        assert [e.kind for e in await run.rest(timeout=3)][-1] == "run.succeeded"
        await until(lambda: _equals(metric(stack, gauge), 0), timeout=5)
    await until(lambda: _equals(double.consumers_on(tenant), 0), timeout=10)


async def _equals(value: Any, expected: float) -> bool:
    return bool(await value == expected)
