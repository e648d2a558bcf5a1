"""Migrations: applied once, checksummed, safe to run concurrently, runnable alone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest

from flowmesh_registry import migrate as m

from .conftest import Registry

pytestmark = pytest.mark.integration


async def test_migrating_again_applies_nothing(registry: Registry, postgres_url: str) -> None:
    role = registry.settings.runtime_role
    results = await asyncio.gather(*(m.migrate(postgres_url, role) for _ in range(3)))
    assert results == [[], [], []]
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    bundled = m.bundled_migrations()
    assert [(r["version"], r["checksum"]) for r in rows] == [
        (b.version, b.checksum) for b in bundled
    ]


async def test_a_changed_migration_is_refused(registry: Registry, postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        edited = m.bundled_migrations()
        edited[0] = m.Migration(version=edited[0].version, sql="SELECT 'edited'")
        with pytest.raises(m.MigrationError, match="changed after it was applied"):
            await m._apply_missing(conn, edited)
        with pytest.raises(m.MigrationError, match="does not know"):
            await m._apply_missing(conn, [])
    finally:
        await conn.close()


async def test_a_superuser_runtime_role_is_refused(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        with pytest.raises(m.MigrationError, match="must not be a superuser"):
            await m.ensure_runtime_role(conn, "postgres")
    finally:
        await conn.close()


def test_migrate_runs_alone_from_the_command_line(registry: Registry, postgres_url: str) -> None:
    env = {
        **os.environ,
        "FLOWMESH_REGISTRY_DATABASE_URL": postgres_url,
        "FLOWMESH_REGISTRY_LOG_FORMAT": "json",
    }
    done = subprocess.run(
        [sys.executable, "-m", "flowmesh_registry", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"event": "registry.migrated"' in done.stdout + done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "flowmesh_registry", "migrate"],
        env={**env, "FLOWMESH_REGISTRY_POOL_MAX_SIZE": "many"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "FLOWMESH_REGISTRY_POOL_MAX_SIZE" in bad.stderr
