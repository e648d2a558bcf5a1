"""The runtime connection pool and tenant-scoped transactions.

Every statement the registry runs for a tenant runs inside :meth:`Database.tenant_tx`,
which sets ``app.tenant_id`` for that transaction only (``set_config(..., true)``), so
row-level security applies on top of the ``tenant_id = $1`` every query is written with.

Driver errors are translated here, once (:func:`translated`): every error that means
PostgreSQL cannot be used now (:func:`unavailable`) becomes :class:`Unavailable` (503, try
again) in every transaction and connection this module hands out; inside a tenant's
transaction (a request), a value PostgreSQL refuses to store as text becomes 422.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_shared.errors import FlowmeshError, Unavailable

SET_TENANT = "SELECT set_config('app.tenant_id', $1, true)"

#: SQLSTATEs (or their first two characters, a class) of a server that cannot serve now:
#: connection exceptions, insufficient resources (too many connections, disk full, out of
#: memory), operator intervention (shutting down, starting up: ``CannotConnectNowError``),
#: a system error, and a standby that cannot write (after a failover).
UNAVAILABLE_STATES = frozenset({"08", "53", "57P01", "57P02", "57P03", "58", "25006"})
#: What asyncpg says when the pool or the connection is gone (an ``InterfaceError``).
_GONE = ("pool is closing", "pool is closed", "pool is not initialized", "connection is closed")
#: SQLSTATEs of a character PostgreSQL's text cannot hold (U+0000 in jsonb or text).
UNSTORABLE_TEXT_STATES = frozenset({"22P05", "22021"})

_json_encoder = msgspec.json.Encoder()


def _encode_json(value: Any) -> str:
    return _json_encoder.encode(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, schema="pg_catalog", encoder=_encode_json, decoder=msgspec.json.decode
        )


def runtime_dsn(owner_dsn: str, role: str) -> str:
    """The owner's DSN with the user replaced by the runtime role (for trust or peer auth)."""
    parts = urlsplit(owner_dsn)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{role}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def switch_tenant(conn: asyncpg.Connection, tenant: str) -> None:
    """From now until the transaction ends, row-level security admits ``tenant``'s rows only."""
    await conn.execute(SET_TENANT, tenant)


def unavailable(exc: BaseException) -> bool:
    """PURE: whether ``exc`` (from asyncpg or the socket) means PostgreSQL cannot be used
    now (restarting, unreachable, full, the connection lost), rather than a bad request."""
    if isinstance(exc, OSError):  # refused, reset, timed out (TimeoutError is one)
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return state in UNAVAILABLE_STATES or state[:2] in UNAVAILABLE_STATES
    if isinstance(exc, asyncpg.InterfaceError):
        return any(words in str(exc) for words in _GONE)
    # A connection the server ended mid-use can be left in a state the driver refuses
    # ("cannot switch to state 15; another operation is in progress"): the pool drops it.
    return isinstance(exc, asyncpg.exceptions.InternalClientError)


def translated(exc: BaseException, *, request: bool) -> FlowmeshError | None:
    """The error of ours that ``exc`` stands for, or None (not the driver's: it stays).
    ``request``: raised in a tenant's request, where a value PostgreSQL cannot store as
    text is the client's (422); the projection keeps the driver's error for that."""
    if unavailable(exc):
        return Unavailable(f"PostgreSQL is not available: {exc or type(exc).__name__}")
    state = str(getattr(exc, "sqlstate", "") or "")
    if request and isinstance(exc, asyncpg.PostgresError) and state in UNSTORABLE_TEXT_STATES:
        message = "a string holds a character PostgreSQL cannot store (U+0000)"
        item = ProblemItem(path="$", code=ErrorCode.VALIDATION_FAILED.name, message=message)
        return FlowmeshError(ErrorCode.VALIDATION_FAILED, message, errors=[item])
    return None


class Database:
    """The registry's pool, connected as the runtime role."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 2, max_size: int = 10) -> Database:
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, init=_init_connection
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise Unavailable(f"PostgreSQL is not reachable: {exc}") from exc
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def tenant_tx(self, tenant: str) -> AsyncIterator[asyncpg.Connection]:
        """A transaction in which row-level security admits ``tenant``'s rows only."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(SET_TENANT, tenant)
                yield conn
        except Exception as exc:
            ours = translated(exc, request=True)
            if ours is None:
                raise
            raise ours from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction with no tenant set yet: it sees no tenant row until
        :func:`switch_tenant` (the projection serves several tenants in one transaction)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn
        except Exception as exc:
            ours = translated(exc, request=False)
            if ours is None:
                raise
            raise ours from exc

    @asynccontextmanager
    async def system_conn(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection with no tenant set: it sees no tenant rows (used by the outbox relay)."""
        try:
            async with self.pool.acquire() as conn:
                yield conn
        except Exception as exc:
            ours = translated(exc, request=False)
            if ours is None:
                raise
            raise ours from exc

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                return bool(await conn.fetchval("SELECT true"))
        except Exception:
            return False
