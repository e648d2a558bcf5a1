"""The runtime connection pool and tenant-scoped transactions.

Every statement the registry runs for a tenant runs inside :meth:`Database.tenant_tx`,
which sets ``app.tenant_id`` for that transaction only (``set_config(..., true)``), so
row-level security applies on top of the ``tenant_id = $1`` every query is written with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from flowmesh_shared.errors import Unavailable

SET_TENANT = "SELECT set_config('app.tenant_id', $1, true)"

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
        except (OSError, asyncpg.PostgresError) as exc:
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
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError) as exc:
            raise Unavailable(f"PostgreSQL connection lost: {exc}") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction with no tenant set yet: it sees no tenant row until
        :func:`switch_tenant` (the projection serves several tenants in one transaction)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError) as exc:
            raise Unavailable(f"PostgreSQL connection lost: {exc}") from exc

    @asynccontextmanager
    async def system_conn(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection with no tenant set: it sees no tenant rows (used by the outbox relay)."""
        async with self.pool.acquire() as conn:
            yield conn

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                return bool(await conn.fetchval("SELECT true"))
        except Exception:
            return False
