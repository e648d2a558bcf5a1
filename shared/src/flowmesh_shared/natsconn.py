"""The NATS connection every service holds: reconnects forever, logs its state changes.

The first connection is bounded (``initial_timeout``): a service that cannot reach NATS at
start fails clearly instead of waiting forever. Once connected, the client reconnects
without limit, and publishes made while disconnected are buffered (up to ``pending_size``).

Each service connects with an inbox prefix of its own (:func:`service_inbox`,
``_INBOX_<service>``): its request/reply and JetStream API answers arrive there, and the
server lets only that service's user subscribe there (``deploy/nats/accounts.conf``), so no
other user reads a reply meant for it (a new tenant's admin key, a resolved secret).
"""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import structlog
from nats.aio.client import Client

from flowmesh_shared.errors import Unavailable

log = structlog.get_logger("flowmesh.nats")

#: NATS's own inbox prefix: for tools and tests, never for a service of a deployment.
DEFAULT_INBOX_PREFIX = "_INBOX"
SERVICES = ("registry", "gateway", "executor", "scheduler")


def service_inbox(service: str) -> str:
    """The inbox prefix of ``service`` (one of :data:`SERVICES`): ``_INBOX_<service>``."""
    if service not in SERVICES:
        raise ValueError(f"{service!r} is not a Flowmesh service")
    return f"_INBOX_{service}"


async def connect(
    url: str,
    name: str,
    *,
    initial_timeout: float = 10.0,
    connect_timeout: float = 2.0,
    reconnect_wait: float = 1.0,
    ping_interval: float = 20.0,
    drain_timeout: float = 10.0,
    inbox_prefix: str = DEFAULT_INBOX_PREFIX,
) -> Client:
    """Connect to ``url`` as ``name``; :class:`Unavailable` when the first connect times out.

    Services pass ``inbox_prefix=service_inbox(<service>)``.
    """
    client = Client()

    async def on_error(exc: Exception) -> None:
        log.warning("nats.error", connection=name, error=str(exc) or type(exc).__name__)

    async def on_disconnected() -> None:
        if client.is_closed or client.is_draining:  # our own drain or close: not news
            return
        log.warning("nats.disconnected", connection=name)

    async def on_reconnected() -> None:
        log.info("nats.reconnected", connection=name, server=_server(client))

    async def on_closed() -> None:
        log.info("nats.closed", connection=name)

    options: dict[str, Any] = {
        "servers": [part.strip() for part in url.split(",") if part.strip()],
        "name": name,
        "error_cb": on_error,
        "disconnected_cb": on_disconnected,
        "reconnected_cb": on_reconnected,
        "closed_cb": on_closed,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "connect_timeout": connect_timeout,
        "reconnect_time_wait": reconnect_wait,
        "ping_interval": ping_interval,
        "max_outstanding_pings": 3,
        "drain_timeout": drain_timeout,
        "inbox_prefix": inbox_prefix,
    }
    try:
        await asyncio.wait_for(client.connect(**options), initial_timeout)
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        await client.close()
        raise Unavailable(f"NATS at {url} did not answer within {initial_timeout:g} s") from exc
    log.info("nats.connected", connection=name, server=_server(client))
    return client


async def drain(client: Client, grace: float) -> None:
    """Drain ``client`` (flush, unsubscribe, close) within ``grace`` seconds, then close it.

    Unsubscribe JetStream pull subscriptions before this (DESIGN section 11): one whose
    ``fetch`` has timed out makes the drain wait for its full ``drain_timeout``.
    """
    if client.is_closed:
        return
    try:
        await asyncio.wait_for(client.drain(), grace)
    except (TimeoutError, nats.errors.Error) as exc:
        log.warning("nats.drain_failed", error=str(exc) or type(exc).__name__)
    finally:
        if not client.is_closed:
            await client.close()


def _server(client: Client) -> str:
    url = client.connected_url
    return f"{url.hostname}:{url.port}" if url is not None else ""
