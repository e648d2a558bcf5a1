"""Where the gateway replicas share their counters: a key-value store with compare-and-set.

:class:`Counters` is the one operation pair the quotas need: read a key with its revision,
write it only if the revision is still the one read. :class:`KvCounters` is the NATS
key-value bucket ``<stream prefix>_QUOTAS`` (the stack already runs it); every failure of it
is :class:`StoreUnavailable`. :class:`MemoryCounters` behaves the same in one process (unit
tests, and a gateway whose quotas are its own).
"""

from __future__ import annotations

from typing import Protocol

import nats.errors
from nats.js import errors as js_errors
from nats.js.kv import KeyValue

from flowmesh_shared.errors import Unavailable


class StoreUnavailable(Unavailable):
    """The quota store did not answer."""


class Counters(Protocol):
    async def read(self, key: str) -> tuple[bytes | None, int]:
        """The key's value and revision; (None, 0) when it has none."""
        ...

    async def write(self, key: str, value: bytes, revision: int) -> bool:
        """Store ``value`` if the key is still at ``revision`` (0: has none); False if not."""
        ...


class KvCounters:
    """:class:`Counters` in a NATS key-value bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def read(self, key: str) -> tuple[bytes | None, int]:
        try:
            entry = await self._kv.get(key)
        except js_errors.KeyNotFoundError:
            return None, 0
        except (TimeoutError, nats.errors.Error) as exc:
            raise StoreUnavailable(f"the quota store did not answer: {exc!r}") from exc
        return entry.value, entry.revision or 0

    async def write(self, key: str, value: bytes, revision: int) -> bool:
        try:
            if revision == 0:
                await self._kv.create(key, value)
            else:
                await self._kv.update(key, value, last=revision)
        except js_errors.KeyWrongLastSequenceError:
            return False
        except (TimeoutError, nats.errors.Error) as exc:
            raise StoreUnavailable(f"the quota store did not answer: {exc!r}") from exc
        return True


class MemoryCounters:
    """:class:`Counters` in this process's memory."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[bytes, int]] = {}
        self._revision = 0
        #: Set to make every call fail as an unreachable store does.
        self.unreachable = False

    async def read(self, key: str) -> tuple[bytes | None, int]:
        self._check()
        found = self._values.get(key)
        return (found[0], found[1]) if found is not None else (None, 0)

    async def write(self, key: str, value: bytes, revision: int) -> bool:
        self._check()
        found = self._values.get(key)
        if (found[1] if found is not None else 0) != revision:
            return False
        self._revision += 1
        self._values[key] = (value, self._revision)
        return True

    def _check(self) -> None:
        if self.unreachable:
            raise StoreUnavailable("the quota store is unreachable")
