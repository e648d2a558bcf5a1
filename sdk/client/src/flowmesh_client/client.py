"""The async :class:`Client`: one gateway, one tenant, one credential; a group per tag."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from flowmesh_client.config import Target, resolve
from flowmesh_client.follow import StreamPolicy
from flowmesh_client.resources import (
    Actions,
    ApiKeys,
    Audit,
    Catalog,
    Connectors,
    Events,
    Secrets,
    Tenants,
    Webhooks,
)
from flowmesh_client.retry import RetryPolicy
from flowmesh_client.runs import Runs
from flowmesh_client.transport import Transport
from flowmesh_client.workflows import Workflows


class Client:
    """The gateway's API for one tenant.

    ``Client(url, tenant, api_key)``; any of them left out comes from ``FLOWMESH_URL``,
    ``FLOWMESH_TENANT``, ``FLOWMESH_API_KEY``, else ``$FLOWMESH_HOME/dev.json`` (``make dev``).
    Use it as ``async with Client() as client:`` (or call :meth:`close`).
    """

    def __init__(
        self,
        url: str | None = None,
        tenant: str | None = None,
        api_key: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        retry: RetryPolicy | None = None,
        stream: StreamPolicy | None = None,
        timeout: float = 75.0,
        user_agent: str | None = None,
    ) -> None:
        options = {"--url": url, "--tenant": tenant, "--key": api_key}
        target = resolve(options, os.environ if env is None else env, cwd or Path.cwd())
        self.target: Target = target
        self.transport = Transport(target, retry=retry, timeout=timeout, user_agent=user_agent)
        policy = stream or StreamPolicy()
        self.workflows = Workflows(self.transport)
        self.runs = Runs(self.transport, policy)
        self.events = Events(self.transport, policy)
        self.api_keys = ApiKeys(self.transport)
        self.secrets = Secrets(self.transport)
        self.connectors = Connectors(self.transport)
        self.actions = Actions(self.transport)
        self.catalog = Catalog(self.transport)
        self.audit = Audit(self.transport)
        self.webhooks = Webhooks(self.transport)
        self.tenants = Tenants(self.transport)

    def __repr__(self) -> str:
        return f"Client({self.target!r})"

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
