"""Fixtures of the fault tests: a loopback HTTP origin for ``http`` steps, and a deployment
(registry, tenant, executor processes) on the session's NATS server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from tests.fault.deployment import Deployment, deployment
from tests.fault.origin import Origin, serve_origin


@pytest_asyncio.fixture(loop_scope="session")
async def origin() -> AsyncIterator[Origin]:
    async with serve_origin() as served:
        yield served


@pytest_asyncio.fixture(loop_scope="session")
async def shared_nats(
    nats_server: Any, postgres_url: str, tmp_path: Path
) -> AsyncIterator[Deployment]:
    """A deployment on the session's NATS server."""
    async with deployment(nats_server.url, postgres_url, tmp_path) as deployed:
        yield deployed
