"""The blocking groups of :class:`~flowmesh_client.sync.SyncClient`: each call is the async
group's own, run on the sync client's loop, and typed as it is (``get`` answers a
``Workflow``); an async iterator becomes a plain iterator."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

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
from flowmesh_client.runs import Runs
from flowmesh_client.workflows import Workflows

P = ParamSpec("P")
T = TypeVar("T")
G = TypeVar("G")


class Loop:
    """An event loop running in a daemon thread until :meth:`stop`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.run(_next(items))
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(items, "aclose", None)
            if close is not None:
                self.run(close())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _next(items: AsyncIterator[T]) -> T:
    return await anext(items)


async def _awaited(value: Awaitable[T]) -> T:
    return await value


class Blocking:
    """A group of the async client, its calls blocking on ``loop``."""

    def __init__(self, group: Any, loop: Loop) -> None:
        self._group, self._loop = group, loop


def call(
    method: Callable[Concatenate[G, P], Awaitable[T]],
) -> Callable[Concatenate[Blocking, P], T]:
    """``method`` of the async group, blocking until its answer."""

    def blocking(self: Blocking, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._loop.run(_awaited(method(self._group, *args, **kwargs)))

    blocking.__doc__ = method.__doc__
    return blocking


def iterate(
    method: Callable[Concatenate[G, P], AsyncIterator[T]],
) -> Callable[Concatenate[Blocking, P], Iterator[T]]:
    """``method`` of the async group, its async iterator a plain one."""

    def blocking(self: Blocking, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        return self._loop.iterate(method(self._group, *args, **kwargs))

    blocking.__doc__ = method.__doc__
    return blocking


class SyncWorkflows(Blocking):
    create = call(Workflows.create)
    apply = call(Workflows.apply)
    list = call(Workflows.list)
    iter = iterate(Workflows.iter)
    get = call(Workflows.get)
    find = call(Workflows.find)
    versions = call(Workflows.versions)
    iter_versions = iterate(Workflows.iter_versions)
    version = call(Workflows.version)
    export = call(Workflows.export)
    import_ = call(Workflows.import_)
    validate = call(Workflows.validate)
    update = call(Workflows.update)
    patch = call(Workflows.patch)
    delete = call(Workflows.delete)
    batch = call(Workflows.batch)
    clone = call(Workflows.clone)
    lock = call(Workflows.lock)
    unlock = call(Workflows.unlock)
    stats = call(Workflows.stats)
    rotate_webhook_secret = call(Workflows.rotate_webhook_secret)
    execute = call(Workflows.execute)


class SyncRuns(Blocking):
    list = call(Runs.list)
    iter = iterate(Runs.iter)
    get = call(Runs.get)
    cancel = call(Runs.cancel)
    retry = call(Runs.retry)
    stream = iterate(Runs.stream)
    follow = iterate(Runs.follow)
    logs = iterate(Runs.logs)


class SyncEvents(Blocking):
    publish = call(Events.publish)
    stream_items = iterate(Events.stream_items)
    stream = iterate(Events.stream)


class SyncApiKeys(Blocking):
    list = call(ApiKeys.list)
    create = call(ApiKeys.create)
    revoke = call(ApiKeys.revoke)


class SyncSecrets(Blocking):
    list = call(Secrets.list)
    set = call(Secrets.set)
    delete = call(Secrets.delete)


class SyncConnectors(Blocking):
    list = call(Connectors.list)
    iter = iterate(Connectors.iter)
    get = call(Connectors.get)
    put = call(Connectors.put)
    delete = call(Connectors.delete)


class SyncActions(Blocking):
    list = call(Actions.list)
    iter = iterate(Actions.iter)
    get = call(Actions.get)
    versions = call(Actions.versions)
    put = call(Actions.put)
    delete = call(Actions.delete)


class SyncCatalog(Blocking):
    list = call(Catalog.list)
    iter = iterate(Catalog.iter)


class SyncAudit(Blocking):
    list = call(Audit.list)
    iter = iterate(Audit.iter)


class SyncWebhooks(Blocking):
    send = call(Webhooks.send)


class SyncTenants(Blocking):
    create = call(Tenants.create)
    get = call(Tenants.get)
    update = call(Tenants.update)
