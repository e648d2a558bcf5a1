"""Run history and statistics (viewer): what the registry projected from run events.

The registry's projection trails the run-events stream by milliseconds (seconds after an
outage). A run the registry does not know yet but the stream does is folded from its
events here, so a run is readable at ``GET /runs/{id}`` as soon as its execute answered.
A run the registry has as queued is read from the stream too: the projection keeps no
``waiting``, and the run may have moved on. A queued run says why it waits: its events
say so once an executor has taken it (``run.waiting``), else its tenant's intake does
(:mod:`flowmesh_gateway.waiting`). The live view of a run is its SSE stream
(``GET /runs/{run_id}/events``).
"""

from __future__ import annotations

from datetime import datetime
from typing import get_args

import msgspec
from aiohttp import web

from flowmesh_gateway.api import RUNS, Call, Route
from flowmesh_gateway.bodies import json_response, query_int, query_list, unprocessable
from flowmesh_gateway.routes.runs import path_run_id
from flowmesh_proto import registry as r
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.ids import parse_uuid
from flowmesh_proto.runs import Run, RunQueued, RunStatus, TriggerKind
from flowmesh_shared.errors import FlowmeshError
from flowmesh_shared.runview import run_view

BASE = "/api/v1/{tenant}"
STATUSES = frozenset(get_args(RunStatus))
TRIGGER_KINDS = frozenset(get_args(TriggerKind))


def _time(call: Call, name: str) -> datetime | None:
    raw = call.request.query.get(name)
    if not raw:
        return None
    try:
        value = msgspec.convert(raw, datetime)
    except msgspec.ValidationError:
        value = None
    if value is None or value.tzinfo is None:
        raise unprocessable(f"{name} must be an RFC 3339 time with an offset", name)
    return value


def _workflow_id(call: Call) -> str | None:
    raw = call.request.query.get("workflow_id")
    if not raw:
        return None
    if parse_uuid(raw) is None:
        raise unprocessable("workflow_id must be a UUID", "workflow_id")
    return raw


async def list_runs(call: Call) -> web.Response:
    statuses = query_list(call.request, "status")
    for status in statuses:
        if status not in STATUSES:
            raise unprocessable(f"status must be among {', '.join(sorted(STATUSES))}", "status")
    kind = call.request.query.get("trigger_kind") or None
    if kind is not None and kind not in TRIGGER_KINDS:
        raise unprocessable(
            f"trigger_kind must be one of {', '.join(sorted(TRIGGER_KINDS))}", "trigger_kind"
        )
    request = r.RunList(
        limit=query_int(call.request, "limit", 1, 100) or 50,
        cursor=call.request.query.get("cursor") or None,
        workflow_id=_workflow_id(call),
        status=statuses,  # type: ignore[arg-type]
        trigger_kind=kind,  # type: ignore[arg-type]
        created_after=_time(call, "created_after"),
        created_before=_time(call, "created_before"),
    )
    return json_response(await call.registry(request))


async def get_run(call: Call) -> web.Response:
    run_id = path_run_id(call)
    try:
        stored: Run = await call.registry(r.RunGet(id=run_id))
    except FlowmeshError as exc:
        if exc.code != ErrorCode.NOT_FOUND:
            raise
        # Not projected yet (or the projection is behind): the stream has the run's events.
        found = await _streamed(call, run_id, None)
        if found is None:
            raise
        return json_response(found)
    if stored.status != "queued":
        return json_response(stored)
    return json_response(await _streamed(call, run_id, stored) or stored)


async def _streamed(call: Call, run_id: str, stored: Run | None) -> Run | None:
    """The run as its events say now (None when it has none), with why it waits if it is
    queued; the registry's ``stored`` view while nothing came after its ``run.queued``."""
    runs = call.request.app[RUNS]
    last = await runs.last(call.tenant, run_id)
    if last is None:
        return stored
    queued = last.event if isinstance(last.event, RunQueued) else None
    if stored is not None and queued is not None:
        run = stored
    else:
        run = run_view(await runs.replay(call.tenant, run_id, last.seq))
    if run.status != "queued" or run.waiting is not None or queued is None:
        return run
    waiting = await runs.waiting(call.tenant, queued.at)
    return msgspec.structs.replace(run, waiting=waiting)


async def workflow_stats(call: Call) -> web.Response:
    workflow_id = call.request.match_info["id"]
    if parse_uuid(workflow_id) is None:
        raise FlowmeshError(ErrorCode.WORKFLOW_NOT_FOUND, f"no workflow {workflow_id!r}")
    stats = await call.registry(r.WorkflowStatsGet(id=workflow_id))
    return json_response(stats)


ROUTES = [
    Route(
        method="GET",
        path=f"{BASE}/runs",
        handler=list_runs,
        role="viewer",
        summary="Run history, newest first (steps are in GET /runs/{run_id})",
        operation_id="run_list",
        response=r.RunPage,
        query=(
            ("limit", "integer"),
            ("cursor", "string"),
            ("workflow_id", "string"),
            ("status", "string"),
            ("trigger_kind", "string"),
            ("created_after", "string"),
            ("created_before", "string"),
        ),
    ),
    Route(
        method="GET",
        path=f"{BASE}/runs/{{run_id}}",
        handler=get_run,
        role="viewer",
        summary="A run with its steps (status, attempts, durations, errors, outputs); a "
        "queued run says why it waits (`waiting`)",
        operation_id="run_get",
        response=Run,
    ),
    Route(
        method="GET",
        path=f"{BASE}/workflows/{{id}}/stats",
        handler=workflow_stats,
        role="viewer",
        summary="Execution count, last run, average and p95 duration of a workflow",
        operation_id="workflow_stats",
        response=r.WorkflowStats,
    ),
]
