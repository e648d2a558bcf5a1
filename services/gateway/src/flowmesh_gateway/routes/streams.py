"""Server-Sent Events of run events (viewer role); the wire format is in :mod:`..sse`.

- ``GET /runs/{run_id}/events``: the run's events from its first (or after the one
  ``Last-Event-ID`` names), then live ones; the response ends after the run's terminal
  event, at once for a finished run once it is replayed. A run is known from the moment
  its id is (execute answers once the run's ``run.queued`` is stored on the tenant's own
  subject of the run): a run id with no message on that subject (an unknown run, a run of
  another tenant, a string that is not a UUID) answers 404 at once, never an open stream
  (DESIGN section 12). Resuming after the terminal event answers ``204``, which tells an
  ``EventSource`` to stop reconnecting.
- ``GET /events/stream``: every run event of the tenant from now on (or after
  ``Last-Event-ID``), ``workflow_id`` to keep one workflow's; it never ends on its own.

Each open stream is a hold of the caller's (:meth:`Call.holding`): past the credential's or
the tenant's limit of concurrent holds, 429 ``RATE_LIMITED`` with ``Retry-After``; the hold
ends with the stream, however it ends.

``Last-Event-ID`` (the header an ``EventSource`` sends when it reconnects) wins over the
``last_event_id`` query parameter (for a first connect, where a browser cannot set headers).
Either must be a stream sequence (decimal, 0 to 2^63-1): anything else is a 422, never
silently a replay from the start.

The stream of a run that is queued (its ``run.queued`` its latest event) also says why
it waits: a ``run.waiting`` event with no ``id:`` when it opens and whenever the reason
changes, until the run's next event (:mod:`flowmesh_gateway.waiting`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from flowmesh_gateway.api import (
    CONSOLE_SESSIONS,
    EVENT_STREAM,
    RUNS,
    SETTINGS,
    STREAMS,
    Call,
    Route,
)
from flowmesh_gateway.bodies import query_int, unprocessable
from flowmesh_gateway.routes.runs import RUNS_PATH, path_run_id
from flowmesh_gateway.runs import LastEvent
from flowmesh_gateway.sse import MAX_EVENT_ID, parse_event_id
from flowmesh_gateway.streams import Plan
from flowmesh_gateway.waiting import WaitingNotices
from flowmesh_proto.ids import parse_uuid
from flowmesh_proto.runs import RunQueued, Waiting
from flowmesh_shared.errors import NotFound

LAST_EVENT_ID = "Last-Event-ID"


def resume_after(request: web.Request) -> int | None:
    """The stream sequence the client has seen, if it says."""
    from_query = query_int(request, "last_event_id", 0, MAX_EVENT_ID)
    try:
        from_header = parse_event_id(request.headers.get(LAST_EVENT_ID))
    except ValueError as exc:
        raise unprocessable(f"{LAST_EVENT_ID} {exc}", LAST_EVENT_ID) from exc
    return from_header if from_header is not None else from_query


def signed_in(call: Call) -> Callable[[], Awaitable[bool]]:
    """Whether the stream's caller is still let in (asked once a heartbeat)."""
    console = call.request.app[CONSOLE_SESSIONS]
    return lambda: console.still_signed_in(call.request)


def _has_seen_the_end(last: LastEvent | None, after: int | None) -> bool:
    return (
        last is not None and last.final_status is not None and after is not None
    ) and after >= last.seq


async def run_events(call: Call) -> web.StreamResponse:
    run_id = path_run_id(call)
    after = resume_after(call.request)
    runs = call.request.app[RUNS]
    last = await runs.last(call.tenant, run_id)
    if last is None:
        raise NotFound(f"run {run_id} not found")
    if _has_seen_the_end(last, after):  # nothing will ever follow: EventSource stops on 204
        return web.Response(status=204, headers={"Cache-Control": "no-cache"})
    live = call.request.app[STREAMS]
    plan = Plan(
        scope="run",
        subject=live.subjects.run_events(call.tenant, run_id),
        request_id=call.request_id,
        after=after,
        ends=True,
    )
    notices = None
    if isinstance(last.event, RunQueued):  # queued, and no executor has said more yet
        queued, tenant = last.event, call.tenant

        async def probe() -> Waiting:
            return await runs.waiting(tenant, queued.at)

        every = call.request.app[SETTINGS].sse_waiting_seconds
        notices = WaitingNotices(queued, last.seq, probe, every=every)
    async with call.holding():
        return await live.serve(call.request, plan, notices, signed_in(call))


async def tenant_events(call: Call) -> web.StreamResponse:
    after = resume_after(call.request)
    raw = call.request.query.get("workflow_id") or None
    workflow_id = parse_uuid(raw) if raw is not None else None
    if raw is not None and workflow_id is None:
        raise unprocessable("workflow_id must be a workflow id (a UUID)", "workflow_id")
    live = call.request.app[STREAMS]
    plan = Plan(
        scope="tenant",
        subject=live.tenant_subject(call.tenant),
        request_id=call.request_id,
        after=after,
        from_start=False,
        workflow_id=str(workflow_id) if workflow_id is not None else None,
    )
    async with call.holding():
        return await live.serve(call.request, plan, allowed=signed_in(call))


ROUTES: list[Route] = [
    Route(
        method="GET",
        path=f"{RUNS_PATH}/{{run_id}}/events",
        handler=run_events,
        role="viewer",
        summary="Server-Sent Events of a run: its past events, then live ones, ending after "
        "the terminal event; resumes after `Last-Event-ID` (header) or `last_event_id`",
        operation_id="run_events",
        response=EVENT_STREAM,
        also=((204, None, "The run has ended and the client has seen its last event"),),
        query=(("last_event_id", "integer"),),
    ),
    Route(
        method="GET",
        path="/api/v1/{tenant}/events/stream",
        handler=tenant_events,
        role="viewer",
        summary="Server-Sent Events of every run of the tenant from now on (or after "
        "`Last-Event-ID`), of one workflow with `workflow_id`; never ends on its own",
        operation_id="events_stream",
        response=EVENT_STREAM,
        query=(("last_event_id", "integer"), ("workflow_id", "string")),
    ),
]
