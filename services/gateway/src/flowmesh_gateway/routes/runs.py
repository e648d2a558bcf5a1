"""Run control (operator role): execute a workflow, cancel a run, retry a failed one.

Order of judgement after the guard: the resource (the workflow or the run: 404), the body
and query (400/413/415/422), then the state (409), then the input against the version's
``input_schema`` (413/422). A run id that is not a UUID names no run (404).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec
from aiohttp import web

from flowmesh_gateway.api import INPUT_SCHEMAS, QUOTAS, RUNS, SETTINGS, Call, Route
from flowmesh_gateway.bodies import json_body, json_response, query_duration, unprocessable
from flowmesh_gateway.quotas import QuotaExceeded
from flowmesh_proto import http as h
from flowmesh_proto import registry as r
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.ids import new_id
from flowmesh_proto.runs import (
    CancelRequest,
    Run,
    RunQueued,
    RunRequest,
    RunScheduled,
    TriggerInfo,
    run_queued,
    run_scheduled,
)
from flowmesh_shared.errors import FlowmeshError, NotFound
from flowmesh_shared.runview import run_view

WORKFLOWS = "/api/v1/{tenant}/workflows"
RUNS_PATH = "/api/v1/{tenant}/runs"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_encoder = msgspec.json.Encoder()
#: ``Retry-After`` of an execute refused for a full queue (seconds).
QUEUE_RETRY_AFTER = 5


class Start(msgspec.Struct, frozen=True, kw_only=True):
    """What a new run is: the same for an execute and a retry but for these values."""

    workflow: r.Workflow
    trigger: TriggerInfo
    input: Any
    idempotency_key: str | None = None
    attempt: int = 1
    parent_run_id: str | None = None
    #: A delayed run's due time (None: now).
    run_at: datetime | None = None


async def execute(call: Call) -> web.Response:
    settings = call.request.app[SETTINGS]
    wid = call.request.match_info["id"]
    workflow = await call.registry(r.WorkflowGet(id=wid))
    wait = query_duration(call.request, "wait", settings.max_wait)
    body = (
        await json_body(call.request, h.ExecuteBody, settings.max_execute_body_bytes)
        if call.request.body_exists
        else h.ExecuteBody()
    )
    if body.version is not None and body.version != workflow.version:
        request = r.WorkflowGet(id=workflow.id, version=body.version)
        workflow = await call.registry(request)
    run_at = scheduled_time(body, settings.max_schedule_ahead)
    executable(workflow)
    check_input(call, workflow, body.input)
    start = Start(
        workflow=workflow,
        trigger=TriggerInfo(kind="api", data=body.input),
        input=body.input,
        idempotency_key=body.idempotency_key,
        run_at=run_at,
    )
    return await begin(call, start, None if wait is None else wait.total_seconds())


def scheduled_time(body: h.ExecuteBody, ahead: timedelta) -> datetime | None:
    """When a delayed run is due (None: run now); 422 naming the field otherwise."""
    if body.delay is not None and body.run_at is not None:
        raise unprocessable("give delay or run_at, not both", "run_at")
    now = datetime.now(UTC)
    if body.delay is not None:
        if body.delay < timedelta(0):
            raise unprocessable("delay must not be negative", "delay")
        if body.delay > ahead:
            raise unprocessable(f"delay may be at most {_iso(ahead)}", "delay")
        return now + body.delay if body.delay > timedelta(0) else None
    if body.run_at is not None:
        if body.run_at.tzinfo is None:
            raise unprocessable("run_at must be an RFC 3339 time with an offset", "run_at")
        if body.run_at - now > ahead:
            raise unprocessable(f"run_at may be at most {_iso(ahead)} ahead", "run_at")
        return body.run_at.astimezone(UTC) if body.run_at > now else None
    return None


def _iso(duration: timedelta) -> str:
    return msgspec.json.encode(duration).decode().strip('"')


async def cancel(call: Call) -> web.Response:
    runs = call.request.app[RUNS]
    run_id = path_run_id(call)
    last = await runs.last(call.tenant, run_id)
    if last is None:
        raise NotFound(f"run {run_id} not found")
    body = (
        await json_body(call.request, h.CancelBody, call.body_limit)
        if call.request.body_exists
        else h.CancelBody()
    )
    if last.final_status is not None:
        raise FlowmeshError(
            ErrorCode.RUN_NOT_ACTIVE, f"run {run_id} has finished ({last.final_status})"
        )
    by = call.identity.principal if call.identity else ""
    request = CancelRequest(
        tenant=call.tenant, run_id=run_id, reason=body.reason, by=by, at=datetime.now(UTC)
    )
    if not (isinstance(last.event, RunScheduled) and await runs.cancel_scheduled(last, request)):
        await runs.cancel(request)
        if not isinstance(last.event, RunQueued | RunScheduled):
            await runs.wake(last)  # a parked run is held by no executor: wake it up
    answer = h.CancelAccepted(run_id=run_id, status="cancelling")
    return json_response(answer, 202, {"Location": run_location(call.tenant, run_id)})


async def retry(call: Call) -> web.Response:
    runs = call.request.app[RUNS]
    run_id = path_run_id(call)
    last = await runs.last(call.tenant, run_id)
    if last is None:
        raise NotFound(f"run {run_id} not found")
    if last.final_status is None:
        raise FlowmeshError(
            ErrorCode.EXECUTION_IN_PROGRESS, f"run {run_id} has not finished: cancel it first"
        )
    if last.final_status == "succeeded":
        raise FlowmeshError(
            ErrorCode.WORKFLOW_NOT_EXECUTABLE, f"run {run_id} succeeded: there is nothing to retry"
        )
    parent = run_view(await runs.replay(call.tenant, run_id, last.seq))
    workflow = await _workflow_of(call, parent)
    executable(workflow)
    start = Start(
        workflow=workflow,
        trigger=TriggerInfo(kind="retry", data=parent.trigger.data if parent.trigger else None),
        input=parent.input,
        attempt=parent.attempt + 1,
        parent_run_id=parent.id,
    )
    return await begin(call, start, None)


async def _workflow_of(call: Call, run: Run) -> r.Workflow:
    """The version the run ran; a workflow deleted since cannot run again (409)."""
    try:
        request = r.WorkflowGet(id=run.workflow_id, version=run.version)
        workflow: r.Workflow = await call.registry(request)
    except FlowmeshError as exc:
        if exc.code not in (ErrorCode.WORKFLOW_NOT_FOUND, ErrorCode.NOT_FOUND):
            raise
        raise FlowmeshError(
            ErrorCode.WORKFLOW_NOT_EXECUTABLE,
            f"version {run.version} of workflow {run.workflow_id} no longer exists",
        ) from exc
    return workflow


def executable(workflow: r.Workflow) -> None:
    """409 for a disabled workflow or an invalid version."""
    if not workflow.enabled:
        raise FlowmeshError(
            ErrorCode.WORKFLOW_DISABLED, f"workflow {workflow.name} is disabled: enable it first"
        )
    if workflow.validation_status == "invalid":
        raise FlowmeshError(
            ErrorCode.VALIDATION_STATUS_INVALID,
            f"version {workflow.version} of workflow {workflow.name} is invalid "
            "(see its validation_errors)",
        )


def check_input(call: Call, workflow: r.Workflow, value: Any) -> None:
    """413 for an input over the limit, 422 with every problem against ``input_schema``."""
    limit = call.request.app[SETTINGS].max_input_bytes
    size = len(_encoder.encode(value))
    if size > limit:
        raise FlowmeshError(
            ErrorCode.PAYLOAD_TOO_LARGE, f"the input is {size} bytes; at most {limit} are taken"
        )
    if workflow.input_schema is None:
        return
    key = (workflow.id, workflow.version, workflow.content_hash)
    problems = call.request.app[INPUT_SCHEMAS].problems(key, workflow.input_schema, value)
    if problems:
        raise FlowmeshError(
            ErrorCode.VALIDATION_FAILED,
            f"the input does not match the workflow's input_schema ({len(problems)} problems)",
            errors=problems,
        )


async def begin(call: Call, start: Start, wait: float | None) -> web.Response:
    """Start the run (or find the one its idempotency key names); with ``wait``, answer
    200 and the run once it has finished within that many seconds (a hold of the caller's:
    429 past its limit, and nothing started)."""
    if wait is None:
        return await _begin(call, start, None)
    async with call.holding():
        return await _begin(call, start, wait)


async def check_queue(call: Call) -> None:
    """429 when the tenant has its limit of queued runs (DESIGN section 12): nothing of the
    run is published, so nothing is lost; the client asks again later."""
    settings = call.request.app[SETTINGS]
    limit = call.quota.max_queued_runs
    limit = settings.tenant_max_queued_runs if limit is None else limit
    queued = await call.request.app[RUNS].queued(call.tenant)
    if queued >= limit:
        call.request.app[QUOTAS].metrics.refused.labels("queued_runs").inc()
        raise QuotaExceeded(
            f"the tenant has {queued} runs queued and may have {limit}: "
            "try again once some have finished",
            QUEUE_RETRY_AFTER,
        )
    call.request.app[RUNS].started(call.tenant)


async def _begin(call: Call, start: Start, wait: float | None) -> web.Response:
    runs = call.request.app[RUNS]
    workflow, tenant = start.workflow, call.tenant
    run_id, new = str(new_id()), True
    if start.idempotency_key is not None:
        claim = await runs.claim(tenant, workflow.id, start.idempotency_key, run_id)
        run_id, new = claim.run_id, claim.new
        if new:
            try:
                await check_queue(call)
            except QuotaExceeded:
                await runs.unclaim(tenant, workflow.id, start.idempotency_key, claim)
                raise
    else:
        await check_queue(call)
    now = datetime.now(UTC)
    request = RunRequest(
        tenant=tenant,
        run_id=run_id,
        workflow_id=workflow.id,
        version=workflow.version,
        trigger=start.trigger,
        input=start.input,
        idempotency_key=start.idempotency_key,
        parent_run_id=start.parent_run_id,
        attempt=start.attempt,
        requested_at=now,
        run_at=start.run_at,
    )
    first = run_queued(request, now) if start.run_at is None else run_scheduled(request, now)

    async def send() -> None:
        if not new:
            await runs.resume_start(request, first)
        elif isinstance(first, RunScheduled):
            await runs.schedule(request, first)
        else:
            await runs.start(request, first)

    headers = {"Location": run_location(tenant, run_id)}
    status: Literal["queued", "scheduled"] = "scheduled" if start.run_at else "queued"
    if wait is None:
        await send()
    else:
        events = await runs.wait(tenant, run_id, wait, send)
        if events is not None:
            return json_response(run_view(events), 200, headers)
    return json_response(h.RunAccepted(run_id=run_id, status=status), 202, headers)


def path_run_id(call: Call) -> str:
    raw = call.request.match_info["run_id"]
    if not _UUID.fullmatch(raw):
        raise NotFound(f"run {raw[:64]} not found")
    return raw.lower()


def run_location(tenant: str, run_id: str) -> str:
    return f"{RUNS_PATH.format(tenant=tenant)}/{run_id}"


ROUTES = [
    Route(
        method="POST",
        path=f"{WORKFLOWS}/{{id}}/execute",
        handler=execute,
        role="operator",
        status=202,
        summary="Start a run (202); with ?wait=<ISO 8601 duration> the finished run (200)",
        operation_id="workflow_execute",
        conflicts=("409",),
        body=h.ExecuteBody,
        body_required=False,
        response=h.RunAccepted,
        also=((200, Run, "The run, finished within `wait`"),),
        query=(("wait", "string"),),
    ),
    Route(
        method="POST",
        path=f"{RUNS_PATH}/{{run_id}}/cancel",
        handler=cancel,
        role="operator",
        status=202,
        summary="Cancel a run that has not finished (409 RUN_NOT_ACTIVE once it has)",
        operation_id="run_cancel",
        conflicts=("409",),
        body=h.CancelBody,
        body_required=False,
        response=h.CancelAccepted,
    ),
    Route(
        method="POST",
        path=f"{RUNS_PATH}/{{run_id}}/retry",
        handler=retry,
        role="operator",
        status=202,
        summary="Retry a failed, cancelled or timed-out run as a new run reusing its outputs",
        operation_id="run_retry",
        conflicts=("409",),
        response=h.RunAccepted,
    ),
]
