"""The find-or-start servers of ``make dev`` and the tests, started for real."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from flowmesh_devtools.localstack import (
    NatsHandle,
    ensure_nats,
    ensure_nats_cluster,
    ensure_postgres,
    nats_answers,
    tcp_answers,
)
from flowmesh_shared.natsconn import connect, drain

pytestmark = pytest.mark.integration


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture
def home() -> Iterator[Path]:
    """A home every user can traverse (the PostgreSQL owner is not root)."""
    path = Path(tempfile.mkdtemp(prefix="fm-localstack-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_embedded_nats_starts_answers_and_stops(home: Path, nats_server: NatsHandle) -> None:
    found = await ensure_nats(home, nats_server.url)
    assert found.url == nats_server.url
    assert not found.started

    started = await ensure_nats(home, "nats://127.0.0.1:1")  # nothing there: start one
    assert started.started
    assert started.store is not None
    nc = await connect(started.url, "localstack-test")
    js = nc.jetstream()
    await js.add_stream(name="PROBE", subjects=["probe.>"])
    assert (await js.publish("probe.x", b"1")).seq == 1
    await drain(nc, 5.0)
    await started.stop()
    assert not await nats_answers(started.url)
    assert not started.store.exists()


async def test_nats_cluster_replicates_a_stream_and_stops(home: Path) -> None:
    cluster = await ensure_nats_cluster(home, nodes=3)
    try:
        pids = [node.process.pid for node in cluster.nodes if node.process is not None]
        stores = [node.store for node in cluster.nodes if node.store is not None]
        assert len(pids) == len(stores) == 3
        assert len(cluster.url.split(",")) == 3
        nc = await connect(cluster.url, "localstack-test")
        js = nc.jetstream()
        info = await js.add_stream(name="PROBE", subjects=["probe.>"], num_replicas=3)
        assert info.cluster is not None
        assert info.cluster.name == "fm-local"
        assert len(info.cluster.replicas or []) == 2  # and the leader: three copies
        assert (await js.publish("probe.x", b"1")).seq == 1
        await drain(nc, 5.0)
    finally:
        await cluster.stop()
    assert not await nats_answers(cluster.url)
    assert not any(store.exists() for store in stores)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.skipif(shutil.which("runuser") is None and os.geteuid() == 0, reason="needs runuser")
async def test_local_postgres_starts_as_unprivileged_user_and_stops(home: Path) -> None:
    handle = await ensure_postgres(home, None)
    try:
        assert handle.started
        assert handle.data_dir is not None
        conn = await asyncpg.connect(handle.url)
        try:
            assert await conn.fetchval("SELECT current_user") == "postgres"
            data_dir = Path(await conn.fetchval("SHOW data_directory"))
        finally:
            await conn.close()
        assert data_dir == handle.data_dir
        if os.geteuid() == 0:
            assert os.stat(data_dir).st_uid != 0
        again = await ensure_postgres(home, None)  # running: reused as it is, not ours to stop
        assert again.url == handle.url
        assert not again.started
        await again.stop()
        assert await tcp_answers("127.0.0.1", port_of(handle.url))
    finally:
        await handle.stop()
    assert not await tcp_answers("127.0.0.1", port_of(handle.url))
    restarted = await ensure_postgres(home, None)  # stopped: started again, not re-created
    try:
        conn = await asyncpg.connect(restarted.url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
    finally:
        await restarted.stop()
