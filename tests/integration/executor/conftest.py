"""Fixtures of the executor's integration tests: a registry and an executor on real NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
import pytest_asyncio

from flowmesh_executor.main import ExecutorApp, start_executor
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto.subjects import StreamNames, Subjects
from tests.integration.executor.runs import Runs
from tests.integration.harness import Api, Registry, stream_prefix_of


@pytest.fixture(scope="session")
def executor_settings(
    nats_server: Any, subjects: Subjects, streams: StreamNames
) -> ExecutorSettings:
    return ExecutorSettings(
        nats_url=nats_server.url,
        subject_prefix=subjects.prefix,
        stream_prefix=stream_prefix_of(streams),
        http_port=0,
        lease_seconds=5.0,
        http_allow_private=True,
        shutdown_timeout=2.0,
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def executor(
    registry: Registry, executor_settings: ExecutorSettings
) -> AsyncIterator[ExecutorApp]:
    async with AsyncExitStack() as stack:
        yield await start_executor(executor_settings, stack)


@pytest.fixture
def runs(
    executor: ExecutorApp, api: Api, nc: Any, subjects: Subjects, streams: StreamNames
) -> Runs:
    return Runs(api, nc, subjects, streams)
