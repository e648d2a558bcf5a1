"""One ``make dev`` stack (``scripts/dev.py`` as a subprocess) per test module, on the
session's NATS server and PostgreSQL server (see ``devstack.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from flowmesh_devtools.localstack import NatsHandle
from tests.e2e.devstack import DevStack, dev_stack


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(nats_server: NatsHandle, postgres_url: str) -> AsyncIterator[DevStack]:
    async with dev_stack(nats_url=nats_server.url, database_url=postgres_url) as running:
        yield running
