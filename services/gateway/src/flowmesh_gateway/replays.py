"""Webhook requests already accepted, so a replayed one is refused (a JetStream key-value
bucket shared by every gateway).

A key is ``<tenant>.<workflow_id>.<trigger_id>.<message digest>`` (the digest of what was
signed: :func:`flowmesh_gateway.signatures.message_digest`). :meth:`Replays.claim` uses the
bucket's ``create``, which fails when the key exists: of two gateways receiving the same
request, exactly one accepts it. Keys expire with the bucket's TTL, a little over the span
in which a timestamp is accepted (twice the tolerance: it may lie that far on either side
of now), so a request is recognised for as long as its signature could pass.

Every NATS failure becomes :class:`Unavailable` (503).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import nats.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.kv import KeyValue

from flowmesh_gateway.settings import GatewaySettings
from flowmesh_proto.subjects import stream_names
from flowmesh_shared.errors import Unavailable
from flowmesh_shared.jetstream import ensure_bucket

log = structlog.get_logger("flowmesh.gateway.webhooks")

#: Beyond the span a timestamp is accepted in: clocks of several gateways differ a little.
MARGIN = timedelta(minutes=1)


def replay_ttl(tolerance: timedelta) -> timedelta:
    """How long an accepted request is remembered: its timestamp passes for 2 x tolerance."""
    return 2 * tolerance + MARGIN


def replay_key(tenant: str, workflow_id: str, trigger_id: str, digest: str) -> str:
    return f"{tenant}.{workflow_id}.{trigger_id}.{digest}"


class Replays:
    """The bucket of accepted webhook requests (one per gateway process)."""

    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket

    @classmethod
    async def open(cls, nc: Client, settings: GatewaySettings) -> Replays:
        """The bucket, made if missing; an existing one that forgets too soon is lengthened."""
        js: JetStreamContext = nc.jetstream(timeout=settings.rpc_timeout)
        name = stream_names(settings.stream_prefix).webhook_replays
        ttl = replay_ttl(settings.webhook_tolerance)
        bucket = await ensure_bucket(js, name, ttl, settings.streams)
        with jetstream_unavailable("the webhook replay bucket"):
            await _lengthen(js, name, ttl)
        return cls(bucket)

    async def claim(self, key: str) -> bool:
        """True when this request is the first with ``key``; False for a replay."""
        with jetstream_unavailable("the webhook replay bucket"):
            try:
                await self._bucket.create(key, b"")
            except js_errors.KeyWrongLastSequenceError:
                return False
        return True

    async def release(self, key: str) -> None:
        """Forget ``key`` (its request did not start a run); a failure is only logged."""
        try:
            await self._bucket.purge(key)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("webhook.replay_not_released", error=repr(exc))


async def _lengthen(js: JetStreamContext, bucket: str, ttl: timedelta) -> None:
    """A bucket made with a shorter TTL (a smaller tolerance then) gets ``ttl``."""
    stream = f"KV_{bucket}"
    info = await js.stream_info(stream)
    if (info.config.max_age or 0) >= ttl.total_seconds():
        return
    await js.update_stream(dataclasses.replace(info.config, max_age=ttl.total_seconds()))
    log.info("jetstream.bucket_ttl_raised", bucket=bucket, ttl_s=ttl.total_seconds())


@contextmanager
def jetstream_unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except js_errors.APIError as exc:
        log.warning("jetstream.refused", what=what, error=repr(exc))
        raise Unavailable(f"JetStream cannot serve {what} now: {exc.description}") from exc
    except (TimeoutError, nats.errors.Error) as exc:
        log.warning("nats.unavailable", what=what, error=repr(exc))
        raise Unavailable(f"NATS JetStream did not answer in time ({what})") from exc
