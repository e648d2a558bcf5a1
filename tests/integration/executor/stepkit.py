"""What a test of one step function alone needs: the executor's step services with a real
HTTP session (private addresses allowed: the test servers are on loopback) and nothing
else, and a stored connector made from a spec."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec

from flowmesh_executor.nodes import http
from flowmesh_executor.nodes.base import StepServices
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto.connector_rules import connector_hosts
from flowmesh_proto.connectors import Connector, ConnectorSpec
from flowmesh_proto.subjects import Subjects, stream_names

STORED_AT = datetime(2026, 12, 6, tzinfo=UTC)


@asynccontextmanager
async def step_services(**settings: Any) -> AsyncIterator[StepServices]:
    """Step services for http-like steps (the rest unset); the session closed at the end."""
    given = ExecutorSettings(
        **{"http_allow_private": True, "http_max_response_bytes": 10_000, **settings}
    )
    session = http.http_session(given)
    unused: Any = None
    try:
        yield StepServices(
            nc=unused,
            js=unused,
            subjects=Subjects(),
            streams=stream_names(),
            settings=given,
            http=session,
            waits=unused,
            children=unused,
            definitions=unused,
            event_ids=unused,
        )
    finally:
        await session.close()


def stored_connector(name: str, base_url: str, auth: dict[str, Any], **spec: Any) -> Connector:
    """The connector ``name`` as the registry answers it (version 1, no missing secret)."""
    parsed = msgspec.convert({"base_url": base_url, "auth": auth, **spec}, ConnectorSpec)
    return Connector(
        name=name,
        base_url=parsed.base_url,
        hosts=connector_hosts(parsed),
        headers=parsed.headers,
        auth=parsed.auth,
        missing_secrets=[],
        version=1,
        created_at=STORED_AT,
        created_by="key:acme:1",
        updated_at=STORED_AT,
        updated_by="key:acme:1",
    )
