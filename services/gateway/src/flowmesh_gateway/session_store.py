"""Where console sessions are kept: the replicas' ``<prefix>_SESSIONS`` key-value bucket
(:class:`KvSessionStore`), or one process's memory (:class:`MemorySessionStore`), behind
:class:`Sessions`, which judges them by :class:`flowmesh_gateway.sessions.SessionPolicy`.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Protocol

import msgspec
from nats.aio.client import Client
from nats.js import errors as js_errors
from nats.js.kv import KeyValue

from flowmesh_gateway.replays import jetstream_unavailable
from flowmesh_gateway.sessions import (
    MAX_TOKEN_LENGTH,
    MAX_TOUCH_SECONDS,
    Session,
    SessionPolicy,
    Verdict,
    session_digest,
)
from flowmesh_gateway.settings import GatewaySettings
from flowmesh_proto.subjects import stream_names
from flowmesh_shared.jetstream import ensure_bucket


def new_session(tenant: str, key_id: str, role: str, now: float) -> tuple[str, Session]:
    """A new session id (for the cookie only) and what the store keeps of it."""
    session = Session(
        tenant=tenant,
        key_id=key_id,
        role=role,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        seen_at=now,
    )
    return secrets.token_urlsafe(32), session


class SessionStore(Protocol):
    async def get(self, digest: str) -> bytes | None: ...
    async def put(self, digest: str, value: bytes) -> None: ...
    async def delete(self, digest: str) -> None: ...


class MemorySessionStore:
    """A store of one process (tests, a single gateway)."""

    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}

    async def get(self, digest: str) -> bytes | None:
        return self._values.get(digest)

    async def put(self, digest: str, value: bytes) -> None:
        self._values[digest] = value

    async def delete(self, digest: str) -> None:
        self._values.pop(digest, None)


class KvSessionStore:
    """The replicas' shared store: a JetStream key-value bucket (NATS failures are 503)."""

    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket

    async def get(self, digest: str) -> bytes | None:
        with jetstream_unavailable("the console session bucket"):
            try:
                entry = await self._bucket.get(digest)
            except (js_errors.KeyNotFoundError, js_errors.KeyDeletedError):
                return None
        return entry.value or None

    async def put(self, digest: str, value: bytes) -> None:
        with jetstream_unavailable("the console session bucket"):
            await self._bucket.put(digest, value)

    async def delete(self, digest: str) -> None:
        with jetstream_unavailable("the console session bucket"):
            await self._bucket.purge(digest)


_decode = msgspec.json.Decoder(Session)


class Sessions:
    """Console sessions in a store, judged by a policy."""

    def __init__(self, store: SessionStore, policy: SessionPolicy) -> None:
        self.store, self.policy = store, policy

    @classmethod
    async def open(cls, nc: Client, settings: GatewaySettings) -> Sessions:
        """Over the ``<prefix>_SESSIONS`` bucket (made if missing; an entry outlives no
        session's lifetime)."""
        js = nc.jetstream(timeout=settings.rpc_timeout)
        name = stream_names(settings.stream_prefix).sessions
        ttl = timedelta(seconds=settings.console_lifetime_seconds + MAX_TOUCH_SECONDS)
        bucket = await ensure_bucket(js, name, ttl, settings.streams)
        policy = SessionPolicy(
            idle=settings.console_idle_seconds, lifetime=settings.console_lifetime_seconds
        )
        return cls(KvSessionStore(bucket), policy)

    async def create(self, tenant: str, key_id: str, role: str, now: float) -> tuple[str, Session]:
        session_id, session = new_session(tenant, key_id, role, now)
        await self.store.put(session_digest(session_id), msgspec.json.encode(session))
        return session_id, session

    async def find(self, session_id: str, now: float, *, use: bool = True) -> Session | None:
        """The live session of ``session_id`` (its last use written when due, unless
        ``use`` is False: an open stream asking whether it may go on), or None."""
        if not session_id or len(session_id) > MAX_TOKEN_LENGTH:
            return None
        digest = session_digest(session_id)
        raw = await self.store.get(digest)
        if raw is None:
            return None
        try:
            session = _decode.decode(raw)
        except msgspec.DecodeError:
            return None
        verdict = self.policy.judge(session, now)
        if verdict is Verdict.EXPIRED:
            await self.store.delete(digest)
            return None
        if verdict is Verdict.TOUCH and use:
            session = msgspec.structs.replace(session, seen_at=now)
            await self.store.put(digest, msgspec.json.encode(session))
        return session

    async def revoke(self, session_id: str) -> None:
        await self.store.delete(session_digest(session_id))
