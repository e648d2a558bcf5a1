"""The blocking :class:`SyncClient`: the async :class:`Client` run on a private event loop
in a thread of its own, so there is one implementation of every call.

``client.workflows.get(id)`` blocks until the answer (typed as the async call's); a method
that gives an async iterator (``iter``, ``follow``, ``logs`` ...) gives a plain iterator.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from flowmesh_client.blocking import (
    Loop,
    SyncActions,
    SyncApiKeys,
    SyncAudit,
    SyncCatalog,
    SyncConnectors,
    SyncEvents,
    SyncRuns,
    SyncSecrets,
    SyncTenants,
    SyncWebhooks,
    SyncWorkflows,
)
from flowmesh_client.client import Client


class SyncClient:
    """:class:`Client`'s calls, blocking. Same arguments; use ``with SyncClient() as c:``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = Loop()
        try:
            client = self._loop.run(_make(args, kwargs))
        except BaseException:
            self._loop.stop()
            raise
        self._client = client
        self.target = client.target
        self.workflows = SyncWorkflows(client.workflows, self._loop)
        self.runs = SyncRuns(client.runs, self._loop)
        self.events = SyncEvents(client.events, self._loop)
        self.api_keys = SyncApiKeys(client.api_keys, self._loop)
        self.secrets = SyncSecrets(client.secrets, self._loop)
        self.connectors = SyncConnectors(client.connectors, self._loop)
        self.actions = SyncActions(client.actions, self._loop)
        self.catalog = SyncCatalog(client.catalog, self._loop)
        self.audit = SyncAudit(client.audit, self._loop)
        self.webhooks = SyncWebhooks(client.webhooks, self._loop)
        self.tenants = SyncTenants(client.tenants, self._loop)

    def __repr__(self) -> str:
        return f"SyncClient({self.target!r})"

    def close(self) -> None:
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.run(self._client.close())
        finally:
            self._loop.stop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _make(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Client:
    return Client(*args, **kwargs)  # made on the loop that will use its session
