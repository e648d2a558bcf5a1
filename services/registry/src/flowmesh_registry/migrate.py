"""Ordered SQL migrations, applied once each, checksummed, under an advisory lock.

Migrations run as the schema owner (``database_url``). The registry itself then connects
as the runtime role, which owns nothing and has no BYPASSRLS (DESIGN §6, §11); that role is
created here idempotently and granted what it needs on this database.
"""

from __future__ import annotations

import contextlib
import hashlib
from importlib import resources

import asyncpg
import msgspec
import structlog

log = structlog.get_logger("flowmesh.registry.migrate")

#: Any constant works; it only has to be the same for every registry of a database.
ADVISORY_LOCK_KEY = 0x666C6F776D657368  # "flowmesh"

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
SELECT_APPLIED = "SELECT version, checksum FROM schema_migrations"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)"
ROLE_EXISTS = "SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = $1"


class Migration(msgspec.Struct, frozen=True):
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    """The database's migration history does not match this registry's migrations."""


def bundled_migrations() -> list[Migration]:
    """The SQL files shipped in ``flowmesh_registry/migrations``, in name order."""
    folder = resources.files("flowmesh_registry") / "migrations"
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return [Migration(version=f.name.removesuffix(".sql"), sql=f.read_text()) for f in files]


async def migrate(dsn: str, runtime_role: str, runtime_password: str | None = None) -> list[str]:
    """Apply what is missing; return the versions applied now. Safe to run concurrently."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        try:
            applied = await _apply_missing(conn, bundled_migrations())
            await ensure_runtime_role(conn, runtime_role, runtime_password)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    finally:
        await conn.close()
    return applied


async def _apply_missing(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute(CREATE_LEDGER)
    done = {row["version"]: row["checksum"] for row in await conn.fetch(SELECT_APPLIED)}
    known = {m.version for m in migrations}
    unknown = sorted(set(done) - known)
    if unknown:
        raise MigrationError(f"database has migrations this registry does not know: {unknown}")
    applied: list[str] = []
    for migration in migrations:
        recorded = done.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version} changed after it was applied "
                    f"(checksum {recorded[:12]} in the database, {migration.checksum[:12]} here)"
                )
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(INSERT_APPLIED, migration.version, migration.checksum)
        log.info("migration.applied", version=migration.version)
        applied.append(migration.version)
    return applied


async def ensure_runtime_role(
    conn: asyncpg.Connection, role: str, password: str | None = None
) -> None:
    """Create the runtime role if missing and grant it this database's tables (no ownership)."""
    row = await conn.fetchrow(ROLE_EXISTS, role)
    ident = _quote_ident(role)
    if row is None:
        # Another registry (or test session) may create it meanwhile: that is fine.
        with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            await conn.execute(
                f"CREATE ROLE {ident} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
            )
    elif row["rolbypassrls"] or row["rolsuper"]:
        raise MigrationError(f"runtime role {role!r} must not be a superuser nor have BYPASSRLS")
    if password:
        await conn.execute(f"ALTER ROLE {ident} PASSWORD {_quote_literal(password)}")
    database = _quote_ident(await conn.fetchval("SELECT current_database()"))
    for statement in (
        f"GRANT CONNECT ON DATABASE {database} TO {ident}",
        f"GRANT USAGE ON SCHEMA public TO {ident}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ident}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ident}",
        f"REVOKE ALL ON schema_migrations FROM {ident}",
    ):
        await conn.execute(statement)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
