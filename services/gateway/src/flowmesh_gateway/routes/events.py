"""``POST /events`` (operator role): publish a trigger event for services that speak HTTP.

The body is a CloudEvents-named envelope ``{"id"?, "type", "source"?, "time"?, "data"}``
(unknown fields refused); the gateway fills in the tenant (the path's), a UUIDv7 ``id`` and
the ``time`` received when they are missing, stores it on ``<prefix>.<t>.events.<type>``
(stream FM_EVENTS) and answers ``202 {"id"}``. The same id sent again within the stream's
duplicate window is stored once and answered the same.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from flowmesh_gateway.api import EVENTS, Call, Route
from flowmesh_gateway.bodies import json_body, json_response, unprocessable
from flowmesh_proto import http as h
from flowmesh_proto.events import EventEnvelope
from flowmesh_proto.ids import EVENT_TYPE_PATTERN, is_event_id, is_event_type, new_id

PATH = "/api/v1/{tenant}/events"


async def publish(call: Call) -> web.Response:
    body = await json_body(call.request, h.EventBody, call.body_limit)
    # The schema's patterns let a trailing newline through ($ matches before one).
    if not is_event_type(body.type):
        raise unprocessable(f"type must match {EVENT_TYPE_PATTERN}", "type")
    if body.id is not None and not is_event_id(body.id):
        raise unprocessable("id must be printable ASCII without spaces", "id")
    envelope = EventEnvelope(
        id=body.id if body.id is not None else str(new_id()),
        type=body.type,
        tenant=call.tenant,
        source=body.source,
        time=body.time.astimezone(UTC) if body.time is not None else datetime.now(UTC),
        data=body.data,
    )
    await call.request.app[EVENTS].publish(envelope)
    return json_response(h.EventAccepted(id=envelope.id), 202)


ROUTES = [
    Route(
        method="POST",
        path=PATH,
        handler=publish,
        role="operator",
        status=202,
        summary="Publish an event (CloudEvents names) on the tenant's events subject; "
        "event triggers and wait_for_event steps see it",
        operation_id="event_publish",
        body=h.EventBody,
        response=h.EventAccepted,
    ),
]
