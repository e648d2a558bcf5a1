"""A Flowmesh deployment on one NATS server, under subject and stream prefixes of its own:
a registry in this process (on the session's PostgreSQL database), a tenant, and a way to
start executor processes. Its own prefixes keep the executors started here away from any
executor another test runs in this process (they would share one durable consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.js.errors import NotFoundError

from flowmesh_proto.subjects import StreamNames, Subjects, stream_names
from flowmesh_registry.main import start_registry
from flowmesh_registry.secretbox import new_key
from flowmesh_registry.settings import RegistrySettings
from flowmesh_shared.errors import Unavailable
from flowmesh_shared.natsconn import connect, drain
from flowmesh_shared.rpc import RpcClient
from tests.fault.executors import PREFIX, ExecutorProcess, executor_environment, executors
from tests.fault.history import Entry, read_history
from tests.integration.executor.runs import Runs
from tests.integration.harness import Api, Registry, TenantHandle, new_tenant, stream_prefix_of


@dataclass
class Deployment:
    nats_url: str
    nc: Any
    subjects: Subjects
    streams: StreamNames
    runs: Runs
    logs: Path
    registry: Registry

    @property
    def tenant(self) -> str:
        return self.runs.tenant

    def executors(
        self, count: int, lease_seconds: float, settings: dict[str, str] | None = None
    ) -> contextlib.AbstractAsyncContextManager[list[ExecutorProcess]]:
        """``count`` executor processes; ``settings``: more ``FLOWMESH_EXECUTOR_*`` values,
        named without the prefix (``{"HTTP_DEFAULT_TIMEOUT": "2"}``)."""
        env = executor_environment(self.nats_url, self.subjects, self.streams, lease_seconds)
        env.update({f"{PREFIX}{name}": value for name, value in (settings or {}).items()})
        return executors(count, env, self.logs)

    async def another_tenant(self, prefix: str = "g") -> Runs:
        """A second tenant of this deployment, with runs of its own."""
        tenant = await new_tenant(self.registry, prefix)
        return Runs(Api(self.registry, tenant), self.nc, self.subjects, self.streams)

    async def history(self, run_id: str) -> list[Entry]:
        return await read_history(
            self.nc.jetstream(), self.subjects, self.streams, self.tenant, run_id
        )


@asynccontextmanager
async def deployment(nats_url: str, postgres_url: str, logs: Path) -> AsyncIterator[Deployment]:
    token = secrets.token_hex(4)
    subjects = Subjects(prefix=f"fmf{token}")
    streams = stream_names(prefix=f"FMF{token.upper()}")
    async with AsyncExitStack() as stack:
        nc = await connect(nats_url, "flowmesh-fault-tests")
        stack.push_async_callback(drain, nc, 5.0)
        stack.push_async_callback(_delete_streams, nc, streams)
        settings = RegistrySettings(
            database_url=postgres_url,
            nats_url=nats_url,
            subject_prefix=subjects.prefix,
            stream_prefix=stream_prefix_of(streams),
            http_port=0,
            outbox_poll_interval=0.2,
            secrets_key=new_key(),
        )
        app = await start_registry(settings, stack)
        registry = Registry(app, RpcClient(nc, subjects, timeout=5.0), settings)
        tenant = await _first_tenant(registry)
        runs = Runs(Api(registry, tenant), nc, subjects, streams)
        yield Deployment(nats_url, nc, subjects, streams, runs, logs, registry)


async def _first_tenant(registry: Registry) -> TenantHandle:
    """The deployment's tenant. Once (of thousands of runs, under load) the registry's
    first answer was "no responders" though it had flushed its subscriptions: the first
    request is asked again for up to 5 s rather than failing the test's setup."""
    deadline = asyncio.get_running_loop().time() + 5.0
    while True:
        try:
            return await new_tenant(registry, "f")
        except Unavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _delete_streams(nc: Any, streams: StreamNames) -> None:
    if not nc.is_connected:
        return
    js = nc.jetstream()
    names = [getattr(streams, field) for field in StreamNames.__struct_fields__]
    for name in names:
        for stream in (name, f"KV_{name}"):
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream)
