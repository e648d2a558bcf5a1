"""Stream and consumer provisioning against a real server: idempotent, isolated by prefix."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from flowmesh_proto.subjects import StreamNames, Subjects, run_request_consumer, stream_names
from flowmesh_shared.errors import Conflict
from flowmesh_shared.jetstream import (
    StreamLimits,
    ensure_consumer,
    ensure_stream,
    provision_streams,
)

pytestmark = pytest.mark.integration

LIMITS = StreamLimits(run_events_max_age=timedelta(hours=2), events_max_bytes=64 * 1024 * 1024)


def all_names(names: StreamNames) -> list[str]:
    return [
        names.run_requests,
        names.run_events,
        names.events,
        names.tasks,
        names.registry,
        names.timers,
    ]


@pytest_asyncio.fixture(loop_scope="session")
async def js(nc: Client) -> JetStreamContext:
    return nc.jetstream()


@pytest_asyncio.fixture(loop_scope="session")
async def other_prefix(js: JetStreamContext) -> AsyncIterator[tuple[Subjects, StreamNames]]:
    token = secrets.token_hex(4)
    names = stream_names(f"FMO{token.upper()}")
    yield Subjects(f"fmo{token}"), names
    for name in all_names(names):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)


async def test_provisioning_twice_changes_nothing(
    js: JetStreamContext, subjects: Subjects, streams: StreamNames
) -> None:
    first = await provision_streams(js, subjects, streams, LIMITS)
    second = await provision_streams(js, subjects, streams, LIMITS)
    assert [info.config.name for info in first] == all_names(streams)
    assert [info.created for info in second] == [info.created for info in first]
    assert [info.config.max_age for info in second] == [info.config.max_age for info in first]


async def test_the_streams_have_the_contract_retention(
    js: JetStreamContext, subjects: Subjects, streams: StreamNames
) -> None:
    await provision_streams(js, subjects, streams, LIMITS)
    expected = {
        streams.run_requests: (RetentionPolicy.WORK_QUEUE, subjects.all_run_requests),
        streams.run_events: (RetentionPolicy.LIMITS, subjects.all_run_events),
        streams.events: (RetentionPolicy.LIMITS, subjects.all_events),
        streams.tasks: (RetentionPolicy.WORK_QUEUE, subjects.all_tasks),
        streams.registry: (RetentionPolicy.LIMITS, subjects.all_workflow_changes),
        streams.timers: (RetentionPolicy.WORK_QUEUE, subjects.all_timers),
    }
    for name, (retention, subject) in expected.items():
        config = (await js.stream_info(name)).config
        assert (config.retention, config.subjects) == (retention, [subject]), name
        assert config.storage == StorageType.FILE
    run_requests = (await js.stream_info(streams.run_requests)).config
    assert run_requests.duplicate_window == timedelta(days=1).total_seconds()
    run_events = (await js.stream_info(streams.run_events)).config
    assert run_events.max_age == timedelta(hours=2).total_seconds()


async def test_changed_limits_update_the_stream_in_place(
    js: JetStreamContext, subjects: Subjects, streams: StreamNames
) -> None:
    await provision_streams(js, subjects, streams, LIMITS)
    created = (await js.stream_info(streams.events)).created
    wider = StreamLimits(run_events_max_age=timedelta(hours=2), events_max_bytes=128 * 1024 * 1024)
    await provision_streams(js, subjects, streams, wider)
    info = await js.stream_info(streams.events)
    assert info.config.max_bytes == 128 * 1024 * 1024
    assert info.created == created
    await provision_streams(js, subjects, streams, LIMITS)  # back, for the other tests


async def test_two_prefixes_coexist_on_one_server(
    js: JetStreamContext,
    nc: Client,
    subjects: Subjects,
    streams: StreamNames,
    other_prefix: tuple[Subjects, StreamNames],
) -> None:
    other_subjects, other_streams = other_prefix
    await provision_streams(js, subjects, streams, LIMITS)
    await provision_streams(js, other_subjects, other_streams, LIMITS)
    ack = await js.publish(other_subjects.events("acme", "order.created"), b"{}")
    assert ack.stream == other_streams.events
    ours = await js.stream_info(streams.events, subjects_filter=subjects.all_events)
    theirs = await js.stream_info(other_streams.events)
    assert theirs.state.messages == 1
    assert ours.config.name != theirs.config.name
    assert ours.config.subjects != theirs.config.subjects


async def test_a_stream_with_other_retention_is_refused_not_replaced(js: JetStreamContext) -> None:
    name = f"FMX{secrets.token_hex(4).upper()}"
    subject = f"fmx{secrets.token_hex(4)}.>"
    await js.add_stream(
        StreamConfig(name=name, subjects=[subject], retention=RetentionPolicy.LIMITS)
    )
    try:
        wanted = StreamConfig(name=name, subjects=[subject], retention=RetentionPolicy.WORK_QUEUE)
        with pytest.raises(Conflict, match="retention"):
            await ensure_stream(js, wanted)
    finally:
        await js.delete_stream(name)


def test_a_duplicate_window_longer_than_max_age_is_refused() -> None:
    with pytest.raises(ValueError, match="run_requests_duplicate_window"):
        StreamLimits(run_requests_max_age=timedelta(hours=1))


async def test_ensure_consumer_is_idempotent_and_updates(
    js: JetStreamContext, subjects: Subjects, streams: StreamNames
) -> None:
    await provision_streams(js, subjects, streams, LIMITS)
    # A tenant's run-request consumer, as the executors make it: the stream is a work
    # queue shared with the session's executors, whose consumers filter other tenants.
    tenant = f"jst-{secrets.token_hex(3)}"
    base = {
        "durable_name": run_request_consumer(tenant),
        "ack_policy": AckPolicy.EXPLICIT,
        "filter_subject": subjects.run_requests(tenant),
    }
    config = ConsumerConfig(**base, ack_wait=30.0)
    try:
        first = await ensure_consumer(js, streams.run_requests, config)
        again = await ensure_consumer(js, streams.run_requests, config)
        assert again.created == first.created
        longer = ConsumerConfig(**base, ack_wait=60.0)
        updated = await ensure_consumer(js, streams.run_requests, longer)
        assert updated.config.ack_wait == 60.0
        assert updated.created == first.created
    finally:
        await js.delete_consumer(streams.run_requests, run_request_consumer(tenant))
