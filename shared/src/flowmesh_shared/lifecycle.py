"""Service lifecycle (STYLE habit 9): run until a signal, then shut down in order.

A service's ``start`` opens its resources into an :class:`AsyncExitStack` in dependency
order (pool, NATS connection, then the things that take work in: RPC service, consumers,
HTTP). The stack closes them in reverse: intake stops first, in-flight work gets a bounded
wait and is then cancelled, pull subscriptions are unsubscribed, NATS is drained, the pool
is closed. One summary line is logged at the end.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import structlog

from flowmesh_shared.logging import configure_logging
from flowmesh_shared.settings import CommonSettings, SettingsError, load_settings
from flowmesh_shared.telemetry import configure_tracing

log = structlog.get_logger("flowmesh.lifecycle")

T = TypeVar("T")
Start = Callable[[AsyncExitStack, asyncio.Event], Awaitable[None]]
SettingsT = TypeVar("SettingsT", bound=CommonSettings)


class InFlight:
    """Tasks doing work that was taken in: bounded in number, awaited (then cancelled) at stop."""

    def __init__(self, limit: int | None = None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._slots = asyncio.Semaphore(limit) if limit else None

    def __len__(self) -> int:
        return len(self._tasks)

    async def spawn(
        self, work: Coroutine[Any, Any, T], *, name: str | None = None
    ) -> asyncio.Task[T]:
        """Run ``work`` in its own task; waits for a free slot when ``limit`` are running."""
        if self._slots is not None:
            try:
                await self._slots.acquire()
            except BaseException:
                work.close()
                raise
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if self._slots is not None:
            self._slots.release()

    async def wait(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for the running tasks, then cancel the rest.

        Returns how many were cancelled.
        """
        pending = set(self._tasks)
        if not pending:
            return 0
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
        return len(late)


def install_stop_signals(stop: asyncio.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set ``stop``; returns a function that removes the handlers."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, _on_signal, stop, sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no support
            continue
        installed.append(sig)

    def remove() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return remove


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.info("service.signal", signal=sig.name)
    stop.set()


async def run_service(
    name: str,
    start: Start,
    *,
    shutdown_timeout: float,
    stop: asyncio.Event | None = None,
) -> int:
    """Run a service until ``stop`` is set (by SIGTERM/SIGINT, or by the caller).

    ``start(stack, stop)`` opens the resources into ``stack`` and returns once the service
    is serving; it may set ``stop`` itself (a fatal background failure). Each resource
    bounds its own closing by ``shutdown_timeout``; the whole shutdown is cut off at twice
    that. Returns an exit status: 0 after a clean stop, 1 when starting or stopping failed.
    """
    stop = stop if stop is not None else asyncio.Event()
    began = time.monotonic()
    stopping = began
    remove_signals = install_stop_signals(stop)
    outcome, status = "stopped", 0
    try:
        async with asyncio.timeout(None) as deadline, AsyncExitStack() as stack:
            try:
                await start(stack, stop)
            except Exception:
                log.exception("service.start_failed", service=name)
                outcome, status = "start_failed", 1
            else:
                frozen = freeze_startup_objects()
                log.info("service.started", service=name, ms=_ms(began), gc_frozen=frozen)
                await stop.wait()
                log.info("service.stopping", service=name, timeout_s=shutdown_timeout)
            stopping = time.monotonic()
            deadline.reschedule(asyncio.get_running_loop().time() + 2 * shutdown_timeout)
    except TimeoutError:
        log.error("service.stop_timed_out", service=name, limit_s=2 * shutdown_timeout)
        outcome, status = "stop_timed_out", 1
    except Exception:
        log.exception("service.stop_failed", service=name)
        outcome, status = "stop_failed", 1
    finally:
        remove_signals()
    log.info(
        "service.exited",
        service=name,
        outcome=outcome,
        uptime_s=round(time.monotonic() - began, 3),
        stop_ms=_ms(stopping),
    )
    return status


def serve(name: str, start: Start, *, shutdown_timeout: float, otel_service_name: str = "") -> int:
    """A service process's main: tracing (if configured), run until stopped, flush traces."""
    flush_traces = configure_tracing(otel_service_name or f"flowmesh-{name}")
    try:
        return asyncio.run(run_service(name, start, shutdown_timeout=shutdown_timeout))
    finally:
        flush_traces()


def service_cli(
    name: str,
    settings_type: type[SettingsT],
    env_prefix: str,
    start: Callable[[SettingsT, AsyncExitStack], Awaitable[object]],
    argv: list[str] | None = None,
) -> int:
    """A service's ``python -m`` main: no arguments, settings from the environment (exit 2
    with the reason when they are unusable), logging, then :func:`serve` until stopped."""
    if sys.argv[1:] if argv is None else argv:
        print(f"usage: python -m flowmesh_{name}", file=sys.stderr)
        return 2
    try:
        settings = load_settings(settings_type, env_prefix)
    except SettingsError as exc:
        print(f"flowmesh-{name}: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)

    async def begin(stack: AsyncExitStack, stop: asyncio.Event) -> None:
        await start(settings, stack)

    return serve(
        name,
        begin,
        shutdown_timeout=settings.shutdown_timeout,
        otel_service_name=settings.otel_service_name,
    )


def freeze_startup_objects() -> int:
    """Move what start-up made (modules, pools, caches) out of the garbage collector's reach.

    A full collection otherwise walks every long-lived object again and again, pausing
    the service 10-75 ms under load: the whole p99 tail of the gateway benchmark
    (bench/README.md). Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)
