"""The blocking :class:`SyncClient`: the async :class:`Client` run on a private event loop
in a thread of its own, so there is one implementation of every call.

``client.workflows.get(id)`` blocks until the answer; a method that gives an async
iterator (``iter``, ``follow``, ``logs`` ...) gives a plain iterator here.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from flowmesh_client.client import Client

T = TypeVar("T")


class _Loop:
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


class _Group:
    """A group of the async client whose calls block."""

    def __init__(self, group: object, loop: _Loop) -> None:
        self._group, self._loop = group, loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._group, name)
        if not callable(value):
            return value
        return _blocking(value, self._loop)


def _blocking(method: Callable[..., Any], loop: _Loop) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        if inspect.iscoroutinefunction(method):
            return loop.run(method(*args, **kwargs))
        result = method(*args, **kwargs)
        if inspect.isasyncgen(result) or hasattr(result, "__anext__"):
            return loop.iterate(result)
        return result

    call.__doc__ = method.__doc__
    call.__name__ = getattr(method, "__name__", "call")
    return call


class SyncClient:
    """:class:`Client`'s calls, blocking. Same arguments; use ``with SyncClient() as c:``."""

    _GROUPS = (
        "workflows",
        "runs",
        "events",
        "api_keys",
        "secrets",
        "connectors",
        "actions",
        "catalog",
        "audit",
        "webhooks",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = _Loop()
        try:
            self._client = self._loop.run(_make(args, kwargs))
        except BaseException:
            self._loop.stop()
            raise
        self.target = self._client.target
        for name in self._GROUPS:
            setattr(self, name, _Group(getattr(self._client, name), self._loop))

    def __getattr__(self, name: str) -> Any:  # the groups, for type checkers
        raise AttributeError(name)

    def close(self) -> None:
        if self._loop.loop.is_closed():
            return
        self._loop.run(self._client.close())
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
