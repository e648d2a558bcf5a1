"""Provisioning of the streams of DESIGN section 3, and of durable consumers.

Idempotent: a stream that exists with the wanted configuration is left alone, one that
differs in what can change (limits, subjects, duplicate window) is updated, and one that
differs in what cannot (retention, storage) is refused with a clear error. Only settings
that nats-server 2.9 knows are used, so 2.9 and 2.15 both work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal

import msgspec
import nats.errors
import structlog
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.api import (
    ConsumerConfig,
    ConsumerInfo,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.kv import KeyValue

from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_shared.errors import Conflict, Unavailable

log = structlog.get_logger("flowmesh.jetstream")

STREAM_EXISTS = 10058  # "stream name already in use with a different configuration"
#: JetStream's error code for a publish whose ``Nats-Expected-Last-Subject-Sequence`` is not
#: the subject's last sequence (a fenced publish refused).
WRONG_LAST_SEQUENCE = 10071
#: JetStream's error code for a consumer that does not exist (its stream does).
CONSUMER_NOT_FOUND = 10014
_DAY = timedelta(days=1)

#: How long a key of the idempotency bucket lives: a client's idempotency key, an event
#: trigger's claim on a run id, an event id in the ledger (:mod:`flowmesh_shared.event_ids`).
#: Whichever service creates the bucket first sets it, so every one passes this.
IDEMPOTENCY_TTL = timedelta(hours=24)
#: How long a cancel request waits in the run-control bucket for the run's next executor.
CONTROL_TTL = timedelta(days=1)


class StreamLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Retention limits of the streams (settings). No limit: ``max_age`` 0, sizes -1.

    A duplicate window may not be longer than its stream's ``max_age`` (the server refuses
    it): construction checks this.
    """

    run_requests_max_age: timedelta = 7 * _DAY
    run_requests_duplicate_window: timedelta = _DAY
    run_events_max_age: timedelta = 30 * _DAY
    run_events_max_bytes: int = -1
    run_events_duplicate_window: timedelta = timedelta(minutes=2)
    events_max_age: timedelta = 7 * _DAY
    events_max_bytes: int = -1
    events_duplicate_window: timedelta = timedelta(minutes=2)
    tasks_max_age: timedelta = 7 * _DAY
    tasks_duplicate_window: timedelta = timedelta(minutes=2)
    registry_max_age: timedelta = 7 * _DAY
    registry_duplicate_window: timedelta = timedelta(minutes=10)
    #: Timers wait as long as they must (a delayed run a year away): no age limit.
    timers_max_age: timedelta = timedelta(0)
    timers_duplicate_window: timedelta = _DAY
    max_msg_size: int = -1
    replicas: int = 1
    storage: Literal["file", "memory"] = "file"

    def __post_init__(self) -> None:
        for stream in ("run_requests", "run_events", "events", "tasks", "registry", "timers"):
            window: timedelta = getattr(self, f"{stream}_duplicate_window")
            max_age: timedelta = getattr(self, f"{stream}_max_age")
            if max_age and window > max_age:
                raise ValueError(
                    f"{stream}_duplicate_window ({window}) is longer than "
                    f"{stream}_max_age ({max_age})"
                )
        if self.storage not in ("file", "memory"):
            raise ValueError(f"storage must be 'file' or 'memory', not {self.storage!r}")


def stream_configs(
    subjects: Subjects, names: StreamNames, limits: StreamLimits
) -> list[StreamConfig]:
    """The configuration of every stream, in a stable order."""
    work, keep = RetentionPolicy.WORK_QUEUE, RetentionPolicy.LIMITS
    return [
        _config(names.run_requests, subjects.all_run_requests, work, limits, "run_requests"),
        _config(names.run_events, subjects.all_run_events, keep, limits, "run_events"),
        _config(names.events, subjects.all_events, keep, limits, "events"),
        _config(names.tasks, subjects.all_tasks, work, limits, "tasks"),
        _config(names.registry, subjects.all_workflow_changes, keep, limits, "registry"),
        _config(names.timers, subjects.all_timers, work, limits, "timers"),
    ]


def _config(
    name: str, subject: str, retention: RetentionPolicy, limits: StreamLimits, key: str
) -> StreamConfig:
    window: timedelta = getattr(limits, f"{key}_duplicate_window")
    return StreamConfig(
        name=name,
        subjects=[subject],
        retention=retention,
        storage=StorageType(limits.storage),
        max_age=getattr(limits, f"{key}_max_age").total_seconds(),
        max_bytes=getattr(limits, f"{key}_max_bytes", -1),
        max_msg_size=limits.max_msg_size,
        duplicate_window=window.total_seconds(),
        discard=DiscardPolicy.OLD,
        num_replicas=limits.replicas,
        # Direct gets (a run's last event, on every run start) are answered by any
        # replica without the JetStream API's round of the meta layer: about 3x faster.
        allow_direct=True,
    )


async def provision_streams(
    js: JetStreamContext, subjects: Subjects, names: StreamNames, limits: StreamLimits
) -> list[StreamInfo]:
    """Create or update every stream; calling it again changes nothing."""
    return [await ensure_stream(js, config) for config in stream_configs(subjects, names, limits)]


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> StreamInfo:
    """Create ``config``'s stream, or update it when it exists and differs."""
    name = config.name
    if not name:
        raise ValueError("ensure_stream needs a named stream")
    with _translated(f"stream {name}"):
        try:
            info = await js.stream_info(name)
        except js_errors.NotFoundError:
            return await _create(js, name, config)
        return await _update_if_changed(js, config, info)


async def _create(js: JetStreamContext, name: str, config: StreamConfig) -> StreamInfo:
    try:
        info: StreamInfo = await js.add_stream(config)
    except js_errors.BadRequestError as exc:
        if exc.err_code != STREAM_EXISTS:
            raise
        # Created meanwhile by another replica, with another configuration.
        return await _update_if_changed(js, config, await js.stream_info(name))
    log.info("jetstream.stream_created", stream=name, subjects=config.subjects)
    return info


async def _update_if_changed(
    js: JetStreamContext, config: StreamConfig, info: StreamInfo
) -> StreamInfo:
    differences = stream_differences(config, info.config)
    if not differences:
        return info
    fixed = {"retention", "storage"} & set(differences)
    if fixed:
        raise Conflict(
            f"stream {config.name} exists with another {' and '.join(sorted(fixed))} "
            f"({differences}); it cannot be changed in place: delete the stream or fix the setting"
        )
    updated = await js.update_stream(config)
    log.info("jetstream.stream_updated", stream=config.name, changed=sorted(differences))
    return updated


def stream_differences(wanted: StreamConfig, current: StreamConfig) -> dict[str, Any]:
    """The settings of ``wanted`` that ``current`` does not have: ``{name: (current, wanted)}``."""
    pairs = {
        "subjects": (sorted(current.subjects or []), sorted(wanted.subjects or [])),
        "retention": (_text(current.retention), _text(wanted.retention)),
        "storage": (_text(current.storage), _text(wanted.storage)),
        "discard": (_text(current.discard), _text(wanted.discard)),
        "max_age": (round(current.max_age or 0.0, 3), round(wanted.max_age or 0.0, 3)),
        "duplicate_window": (
            round(current.duplicate_window or 0.0, 3),
            round(wanted.duplicate_window or 0.0, 3),
        ),
        "max_bytes": (current.max_bytes, wanted.max_bytes),
        "max_msg_size": (current.max_msg_size, wanted.max_msg_size),
        "num_replicas": (current.num_replicas, wanted.num_replicas),
        "allow_direct": (bool(current.allow_direct), bool(wanted.allow_direct)),
    }
    return {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}


def _text(value: object) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


async def ensure_consumer(
    js: JetStreamContext, stream: str, config: ConsumerConfig
) -> ConsumerInfo:
    """Create the durable consumer ``config`` on ``stream``, or update it when it differs."""
    name = config.durable_name or config.name
    if not name:
        raise ValueError("ensure_consumer needs a durable consumer (durable_name or name)")
    with _translated(f"consumer {stream}/{name}"):
        info: ConsumerInfo | None
        try:
            info = await js.consumer_info(stream, name)
        except js_errors.NotFoundError:
            info = None
        if info is not None and not consumer_differences(config, info.config):
            return info
        created: ConsumerInfo = await js.add_consumer(stream, config)
    log.info("jetstream.consumer_ensured", stream=stream, consumer=name, existed=info is not None)
    return created


def consumer_differences(wanted: ConsumerConfig, current: ConsumerConfig) -> dict[str, Any]:
    """The settings given in ``wanted`` (those not None) that ``current`` does not have."""
    differences: dict[str, Any] = {}
    for field in dataclasses.fields(wanted):
        value = getattr(wanted, field.name)
        if value is None:
            continue
        key = field.name
        have = getattr(current, key, None)
        if _text(have) != _text(value) and not _same_number(have, value):
            differences[key] = (have, value)
    return differences


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """JetStream API errors become our errors, naming ``what`` was being provisioned."""
    try:
        yield
    except (js_errors.ServiceUnavailableError, js_errors.NoStreamResponseError) as exc:
        raise Unavailable(f"JetStream is not available ({what})") from exc
    except js_errors.APIError as exc:
        raise Conflict(f"{what}: {exc.description} (JetStream error {exc.err_code})") from exc
    except (TimeoutError, nats.errors.Error) as exc:
        raise Unavailable(f"JetStream did not answer in time ({what})") from exc


def _same_number(a: object, b: object) -> bool:
    numbers = (int, float)
    return isinstance(a, numbers) and isinstance(b, numbers) and abs(a - b) < 1e-6


async def ensure_bucket(
    js: JetStreamContext, bucket: str, ttl: timedelta, limits: StreamLimits
) -> KeyValue:
    """The key-value bucket ``bucket`` (keys expire after ``ttl``), created if missing."""
    with _translated(f"bucket {bucket}"):
        try:
            return await js.key_value(bucket)
        except js_errors.BucketNotFoundError:
            pass
        config = KeyValueConfig(
            bucket=bucket,
            history=1,
            ttl=ttl.total_seconds(),
            storage=StorageType(limits.storage),
            replicas=limits.replicas,
        )
        try:
            kv = await js.create_key_value(config)
        except js_errors.BadRequestError as exc:
            if exc.err_code != STREAM_EXISTS:
                raise
            return await js.key_value(bucket)  # created meanwhile by another service
    log.info("jetstream.bucket_created", bucket=bucket, ttl_s=ttl.total_seconds())
    return kv
