"""Fixtures of the scheduler's tests: the session's registry, gateway and executor, and
scheduler replicas started (and stopped, and restarted) by the tests themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_scheduler.main import SchedulerApp, start_scheduler
from flowmesh_scheduler.settings import SchedulerSettings
from tests.helpers import until
from tests.integration.executor.conftest import executor, executor_settings
from tests.integration.gateway.conftest import Client, http, jwt_keys
from tests.integration.harness import Registry, new_tenant, stream_prefix_of

__all__ = ["executor", "executor_settings", "http", "jwt_keys"]


class Replica:
    """One scheduler replica in this process; ``stop`` is a clean shutdown."""

    def __init__(self, app: SchedulerApp, stack: AsyncExitStack) -> None:
        self.app, self._stack = app, stack
        self.running = True

    async def stop(self) -> None:
        if self.running:
            self.running = False
            await self._stack.aclose()


class Schedulers:
    """Starts replicas on demand; every one still running is stopped after the test."""

    def __init__(self, settings: SchedulerSettings) -> None:
        self.settings = settings
        self.replicas: list[Replica] = []

    async def start(self, **overrides: Any) -> Replica:
        stack = AsyncExitStack()
        settings = msgspec.structs.replace(self.settings, **overrides)
        app = await start_scheduler(settings, stack)
        replica = Replica(app, stack)
        self.replicas.append(replica)
        await until(lambda: app.sync.loaded, message="the catalogue loads")
        return replica

    async def stop_all(self) -> None:
        for replica in self.replicas:
            await replica.stop()


@pytest.fixture(scope="session")
def scheduler_settings(
    registry: Registry, subjects: Subjects, streams: StreamNames
) -> SchedulerSettings:
    return SchedulerSettings(
        nats_url=registry.settings.nats_url,
        subject_prefix=subjects.prefix,
        stream_prefix=stream_prefix_of(streams),
        http_port=0,
        ack_wait=5.0,
        shutdown_timeout=2.0,
        log_level="warning",
    )


@pytest_asyncio.fixture(loop_scope="session")
async def schedulers(
    scheduler_settings: SchedulerSettings, executor: Any
) -> AsyncIterator[Schedulers]:
    made = Schedulers(scheduler_settings)
    try:
        yield made
    finally:
        await made.stop_all()


@pytest_asyncio.fixture(loop_scope="session")
async def client(http: Any, registry: Registry) -> Client:
    return Client(http, await new_tenant(registry, "sch"))


@pytest_asyncio.fixture(loop_scope="session")
async def other_client(http: Any, registry: Registry) -> Client:
    return Client(http, await new_tenant(registry, "sci"))
