"""Concurrency keys: at most ``limit`` runs of a workflow per key value at once.

The slots of one (tenant, workflow, key value) live in one entry of a JetStream key-value
bucket, changed only by compare-and-set: ``holders`` (runs holding a slot, oldest first)
and ``waiting`` (queued runs, first come first served). A run takes a slot before it
starts and gives it back after its terminal event, on every path: success, failure,
cancel, timeout, and executor death (the redelivered run still holds its slot, resumes,
and releases at its end; a run found already finished releases before its request is
acked). As a last guard, a full entry drops holders whose runs have ended.

``on_limit``: ``queue`` waits for a slot: in process, watching the entry, or (``park``)
parked: the run stays in ``waiting`` and gives its lease back, and whoever releases a slot
asks for the first waiting run again (``wake``; a durable timer rechecks in case that ask
was lost); ``cancel_newest`` cancels the run asking; ``cancel_in_progress`` cancels the
oldest holders to make room.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import structlog
from nats.js import errors as js_errors
from nats.js.kv import KeyValue

from flowmesh_proto.workflow import Concurrency

log = structlog.get_logger("flowmesh.executor.concurrency")

Verdict = Literal["acquired", "cancel", "parked"]
_WATCH_POLL = 0.5


class SlotEntry(msgspec.Struct, kw_only=True):
    holders: list[str] = []
    waiting: list[str] = []


_DECODER = msgspec.json.Decoder(SlotEntry)
_ENCODER = msgspec.json.Encoder()


def slot_key(tenant: str, workflow_id: str, value: Any) -> str:
    """The bucket key of one key value (hashed: a key value may be any text)."""
    digest = hashlib.sha256(_ENCODER.encode(value)).hexdigest()[:32]
    return f"{tenant}.{workflow_id}.{digest}"


@dataclass(slots=True)
class Slots:
    kv: KeyValue
    #: Whether a run has ended (its terminal event is on its subject).
    finished: Callable[[str], Awaitable[bool]]
    #: Ask a run to cancel (the control bucket and subject).
    cancel: Callable[[str, str], Awaitable[None]]
    #: Ask for a parked run again (its request, with a message id naming why).
    wake: Callable[[str, str], Awaitable[None]] | None = None

    async def acquire(
        self,
        key: str,
        run_id: str,
        policy: Concurrency,
        stop: Callable[[], bool],
        *,
        park: bool = False,
        on_wait: Callable[[], Awaitable[None]] | None = None,
    ) -> Verdict:
        """Take a slot for ``run_id`` (waiting if the policy queues); ``cancel`` when the
        policy cancels the newest run instead, or when ``stop()`` turns true while queued;
        ``parked`` (with ``park``) when it must wait: it keeps its place in the queue.
        ``on_wait`` is called once, when the run is queued and about to wait or park."""
        told = False
        while True:
            if stop():
                await self.release(key, run_id)
                return "cancel"
            entry, revision = await self._read(key)
            if run_id in entry.holders:
                return "acquired"
            if len(entry.holders) >= policy.limit:
                entry.holders = [h for h in entry.holders if not await self.finished(h)]
            free = policy.limit - len(entry.holders)
            queue = [w for w in entry.waiting if w != run_id]
            first = entry.waiting.index(run_id) if run_id in entry.waiting else len(queue)
            if free > 0 and first < free:
                entry.holders.append(run_id)
                entry.waiting = queue
            elif policy.on_limit == "cancel_newest":
                return "cancel"
            elif policy.on_limit == "cancel_in_progress":
                evicted = entry.holders[: len(entry.holders) - policy.limit + 1]
                entry.holders = [h for h in entry.holders if h not in evicted] + [run_id]
                entry.waiting = queue
                if await self._write(key, entry, revision):
                    for holder in evicted:
                        await self.cancel(holder, "a newer run took its concurrency slot")
                    return "acquired"
                continue
            elif run_id not in entry.waiting:
                entry.waiting.append(run_id)
            else:
                if on_wait is not None and not told:
                    told = True
                    await on_wait()
                if park:
                    return "parked"
                await self._await_change(key, revision)
                continue
            if await self._write(key, entry, revision) and run_id in entry.holders:
                return "acquired"

    async def release(self, key: str, run_id: str) -> None:
        """Give back ``run_id``'s slot (or its place in the queue); idempotent. A slot given
        back wakes the first waiting run (parked runs hold no lease to notice it)."""
        while True:
            entry, revision = await self._read(key)
            if run_id not in entry.holders and run_id not in entry.waiting:
                return
            held = run_id in entry.holders
            entry.holders = [h for h in entry.holders if h != run_id]
            entry.waiting = [w for w in entry.waiting if w != run_id]
            if await self._write(key, entry, revision):
                if held and entry.waiting and self.wake is not None:
                    try:
                        await self.wake(entry.waiting[0], f"slot:{revision}")
                    except Exception as exc:  # its recheck timer still wakes it
                        log.warning("slot.wake_failed", run=entry.waiting[0], error=str(exc))
                return

    async def _read(self, key: str) -> tuple[SlotEntry, int]:
        try:
            found = await self.kv.get(key)
        except js_errors.KeyNotFoundError:
            return SlotEntry(), 0
        if not found.value:
            return SlotEntry(), found.revision or 0
        return _DECODER.decode(found.value), found.revision or 0

    async def _write(self, key: str, entry: SlotEntry, revision: int) -> bool:
        data = _ENCODER.encode(entry)
        try:
            if revision == 0:
                await self.kv.create(key, data)
            else:
                await self.kv.update(key, data, last=revision)
        except (js_errors.KeyWrongLastSequenceError, js_errors.BadRequestError):
            return False  # someone else changed it: read again
        return True

    async def _await_change(self, key: str, revision: int) -> None:
        """Until the entry changes (a slot may have freed), checking at least every 0.5 s."""
        watcher = await self.kv.watch(key, include_history=False)
        try:
            async with asyncio.timeout(_WATCH_POLL):
                async for update in watcher:
                    if update is not None and (update.revision or 0) > revision:
                        return
        except TimeoutError:
            return
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
