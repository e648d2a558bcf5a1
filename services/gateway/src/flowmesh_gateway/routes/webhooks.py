"""Webhooks: ``POST /webhooks/{workflow_id}/{trigger_id}`` starts a run of the workflow;
its credential is the request's signature (:mod:`flowmesh_gateway.signatures`), never a
bearer token. ``POST /workflows/{id}/triggers/{trigger_id}/secret`` (editor) rotates the
secret.

Order of judgement of a webhook call:

1. a body over the limit: 413 (it cannot be verified, and the limit tells nothing);
2. the signature (401 ``INVALID_SIGNATURE``, the detail says which of these): headers
   missing or malformed, a timestamp outside the tolerance, an unknown tenant, workflow or
   webhook trigger, a webhook with no secret, a signature that matches none of the
   webhook's secrets (the current one, and the previous one in its grace period). Each
   counts against the client's failed-authentication budget (429 once spent);
3. rate limits of the tenant and of the webhook (429);
4. the body: JSON only (415), well-formed (400);
5. the state: the workflow disabled or the trigger disabled (409 ``WORKFLOW_DISABLED``),
   the current version invalid (409 ``VALIDATION_STATUS_INVALID``);
6. the input (the body) against the version's ``input_schema`` (413/422);
7. a replay: the same timestamp and body already started a run (401 ``INVALID_SIGNATURE``).

Then the run starts as ``execute`` starts one, with ``trigger: {kind: webhook, trigger_id,
data: <the body>, headers: <a few safe request headers>}`` and the body as input:
``202 {"run_id", "status": "queued"}``.

A request is spent only by the answer that started its run: the replay record is taken
just before the start and given back if the start fails (a 503), so the sender's retry of
the same request is judged anew. Its run id is bound to the request (the idempotency key
is derived from the timestamp and body, as execute's keys are kept, 24 h): a retry after a
start that failed halfway, or two gateways racing, never makes two runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from flowmesh_gateway.api import REPLAYS, SETTINGS, SIGNATURE, Call, Route
from flowmesh_gateway.bodies import decode_json, json_response, raw_body, require_json
from flowmesh_gateway.replays import replay_key
from flowmesh_gateway.routes.runs import Start, begin, check_input, executable
from flowmesh_gateway.signatures import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    check_window,
    message_digest,
    parse_headers,
    verify,
)
from flowmesh_proto import http as h
from flowmesh_proto import registry as r
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.ids import is_tenant_id, is_trigger_id, parse_uuid
from flowmesh_proto.runs import TriggerInfo
from flowmesh_shared.errors import FlowmeshError

PATH = "/api/v1/{tenant}/webhooks/{workflow_id}/{trigger_id}"
ROTATE_PATH = "/api/v1/{tenant}/workflows/{id}/triggers/{trigger_id}/secret"

#: Request headers a run's ``trigger.headers`` may show, besides ``X-*`` ones.
SHOWN_HEADERS = frozenset({"content-type", "user-agent"})
#: ``X-*`` headers whose name says they may hold a credential are never shown.
_CREDENTIAL_LIKE = re.compile(r"auth|cookie|token|secret|key|signature|password|session")
MAX_SHOWN_HEADERS = 32
MAX_HEADER_VALUE = 1024


def invalid(detail: str) -> FlowmeshError:
    return FlowmeshError(ErrorCode.INVALID_SIGNATURE, detail)


def trigger_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers a run may see: Content-Type, User-Agent and ``X-*`` headers,
    never one that may carry a credential (Authorization, Cookie, ``X-Api-Key`` ...)."""
    shown: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in SHOWN_HEADERS or (
            lower.startswith("x-") and not _CREDENTIAL_LIKE.search(lower)
        ):
            shown[lower] = value[:MAX_HEADER_VALUE]
        if len(shown) >= MAX_SHOWN_HEADERS:
            break
    return shown


async def receive(call: Call) -> web.Response:
    request = call.request
    settings = request.app[SETTINGS]
    wid, tid = request.match_info["workflow_id"], request.match_info["trigger_id"]
    limit = call.body_limit
    if request.content_length is not None and request.content_length > limit:
        raise FlowmeshError(ErrorCode.PAYLOAD_TOO_LARGE, f"the body is larger than {limit} bytes")
    try:
        signed = parse_headers(
            request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER)
        )
        check_window(signed.timestamp, time.time(), settings.webhook_tolerance.total_seconds())
    except SignatureError as exc:
        raise invalid(str(exc)) from None
    keys = await _webhook(call, wid, tid)
    body = await raw_body(request, limit)
    try:
        verify(signed, [key.secret for key in keys.secrets], body)
    except SignatureError as exc:
        detail = str(exc)
        if not keys.secrets:
            detail += ": it was made while the registry had no secrets key; rotate it"
        raise invalid(detail) from None
    await call.admit(f"webhook:{keys.workflow_id}:{tid}")
    require_json(request)
    payload: Any = decode_json(body, Any)
    workflow = await _version(call, keys)
    check_input(call, workflow, payload)
    digest = message_digest(signed.timestamp, body)
    start = Start(
        workflow=workflow,
        trigger=TriggerInfo(
            kind="webhook", trigger_id=tid, data=payload, headers=trigger_headers(request.headers)
        ),
        input=payload,
        idempotency_key=f"webhook:{tid}:{digest}",
    )
    replays = request.app[REPLAYS]
    key = replay_key(call.tenant, keys.workflow_id, tid, digest)
    if not await replays.claim(key):
        raise invalid("the request was replayed: this timestamp and body already started a run")
    try:
        return await begin(call, start, None)
    except BaseException:
        await replays.release(key)  # not started: the sender's retry is judged anew
        raise


async def _webhook(call: Call, workflow_id: str, trigger_id: str) -> r.WebhookSecrets:
    """The webhook's secrets and state; 401 for anything that names no webhook."""
    if not is_tenant_id(call.tenant) or parse_uuid(workflow_id) is None:
        raise invalid("no such webhook: unknown workflow")
    if not is_trigger_id(trigger_id):
        raise invalid("no such webhook: unknown trigger")
    try:
        request = r.WebhookSecretGet(workflow_id=workflow_id, trigger_id=trigger_id)
        keys: r.WebhookSecrets = await call.registry("webhook_secret_get", request)
    except FlowmeshError as exc:
        if exc.code is ErrorCode.WORKFLOW_NOT_FOUND:
            raise invalid("no such webhook: unknown workflow") from None
        if exc.code is ErrorCode.NOT_FOUND:
            raise invalid("no such webhook: unknown trigger") from None
        raise
    if not keys.trigger_exists:
        raise invalid("no such webhook: the workflow's current version has no such trigger")
    return keys


async def _version(call: Call, keys: r.WebhookSecrets) -> r.Workflow:
    """The current version the secrets were read with; 409 unless it may run now."""
    request = r.WorkflowGet(id=keys.workflow_id, version=keys.version)
    workflow: r.Workflow = await call.registry("workflow_get", request)
    executable(workflow)
    if not keys.trigger_enabled:
        raise FlowmeshError(
            ErrorCode.WORKFLOW_DISABLED,
            f"trigger {keys.trigger_id} of workflow {workflow.name} is disabled",
        )
    return workflow


async def rotate(call: Call) -> web.Response:
    request = r.WebhookSecretRotate(
        workflow_id=call.request.match_info["id"],
        trigger_id=call.request.match_info["trigger_id"],
    )
    secret: r.WebhookSecret = await call.registry("webhook_secret_rotate", request)
    return json_response(secret, 201)


ROUTES = [
    Route(
        method="POST",
        path=PATH,
        handler=receive,
        role=SIGNATURE,
        status=202,
        summary="Start a run from a signed webhook call: Flowmesh-Timestamp (unix seconds) "
        "and Flowmesh-Signature: v1=<hex HMAC-SHA256 of '<timestamp>.<body>'>; "
        "no bearer token",
        operation_id="webhook_receive",
        conflicts=("409",),
        body="any",
        response=h.RunAccepted,
    ),
    Route(
        method="POST",
        path=ROTATE_PATH,
        handler=rotate,
        role="editor",
        status=201,
        summary="Rotate a webhook trigger's secret (shown once); the previous one stays "
        "valid for the registry's grace period",
        operation_id="webhook_secret_rotate",
        response=r.WebhookSecret,
    ),
]
