"""Webhooks: ``POST /webhooks/{workflow_id}/{trigger_id}`` starts a run of the workflow;
its credential is the request's signature (:mod:`flowmesh_gateway.signatures`), never a
bearer token. ``POST /workflows/{id}/triggers/{trigger_id}/secret`` (editor) rotates the
secret.

Order of judgement of a webhook call:

1. a body over the limit: 413 (it cannot be verified, and the limit tells nothing);
2. the signature (401 ``INVALID_SIGNATURE``): headers missing or malformed, a timestamp
   outside the tolerance, an unknown tenant, workflow or webhook trigger, a webhook with no
   secret, a signature that matches none of the webhook's secrets (the current one, and the
   previous one in its grace period). Each counts against the client's failed-authentication
   budget (429 once spent);
3. rate limits of the tenant and of the webhook (429);
4. the body: JSON only (415), well-formed (400);
5. the state: the workflow disabled or the trigger disabled (409 ``WORKFLOW_DISABLED``),
   the current version invalid (409 ``VALIDATION_STATUS_INVALID``);
6. the input (the body) against the version's ``input_schema`` (413/422);
7. a replay: the same timestamp and body already started a run (401 ``INVALID_SIGNATURE``).

Every 401 is the same answer, :data:`REFUSED` (DESIGN section 7): an unauthenticated caller
learns nothing about which tenants, workflows or triggers exist, nor which check failed.
The reason goes to the log (``webhook.refused``) and to the path tenant's audit log. An
unknown webhook costs the same work as a wrong signature: its body is read and signed with
a stand-in secret, so its answer comes no sooner.

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
import secrets
import time
from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web

from flowmesh_gateway.api import REPLAYS, SETTINGS, SIGNATURE, Call, Route
from flowmesh_gateway.bodies import decode_json, json_response, raw_body, require_json
from flowmesh_gateway.replays import replay_key
from flowmesh_gateway.routes.runs import Start, begin, check_input, executable
from flowmesh_gateway.signatures import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    SignedHeaders,
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

log = structlog.get_logger("flowmesh.gateway.webhooks")

PATH = "/api/v1/{tenant}/webhooks/{workflow_id}/{trigger_id}"
ROTATE_PATH = "/api/v1/{tenant}/workflows/{id}/triggers/{trigger_id}/secret"

#: Request headers a run's ``trigger.headers`` may show, besides ``X-*`` ones.
SHOWN_HEADERS = frozenset({"content-type", "user-agent"})
#: ``X-*`` headers whose name says they may hold a credential are never shown.
_CREDENTIAL_LIKE = re.compile(r"auth|cookie|token|secret|key|signature|password|session")
MAX_SHOWN_HEADERS = 32
MAX_HEADER_VALUE = 1024


#: The detail of every webhook 401, whatever its reason.
REFUSED = "the request is not signed by a webhook that accepts it"
#: Signs the body of a call naming no webhook, so that it costs what a wrong signature does.
_STAND_IN = "whsec_" + secrets.token_urlsafe(32)
_UNSIGNED = SignedHeaders(timestamp=0, signatures=(bytes(32),))


class Refused(Exception):
    """A webhook call refused for ``reason`` (logged and audited, never answered)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    """Start a run for a signed call; every refusal is the same 401 (:data:`REFUSED`)."""
    try:
        return await _receive(call)
    except Refused as exc:
        await _record_refusal(call, exc.reason)
        raise FlowmeshError(ErrorCode.INVALID_SIGNATURE, REFUSED) from None


async def _receive(call: Call) -> web.Response:
    request = call.request
    wid, tid = request.match_info["workflow_id"], request.match_info["trigger_id"]
    limit = call.body_limit
    if request.content_length is not None and request.content_length > limit:
        raise FlowmeshError(ErrorCode.PAYLOAD_TOO_LARGE, f"the body is larger than {limit} bytes")
    signed, body, keys = await _verified(call, wid, tid)
    await call.admit(f"webhook:{keys.workflow_id}:{tid}")
    require_json(request)
    payload: Any = decode_json(body, Any, root="input")
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
        raise Refused("the request was replayed: this timestamp and body already started a run")
    try:
        return await begin(call, start, None)
    except BaseException:
        await replays.release(key)  # not started: the sender's retry is judged anew
        raise


async def _verified(
    call: Call, workflow_id: str, trigger_id: str
) -> tuple[SignedHeaders, bytes, r.WebhookSecrets]:
    """The signed headers, the body and the webhook, once the signature holds; else
    :class:`Refused` with the first reason, after the same work whatever the reason."""
    request = call.request
    tolerance = request.app[SETTINGS].webhook_tolerance.total_seconds()
    reason: str | None = None
    signed = _UNSIGNED
    try:
        signed = parse_headers(
            request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER)
        )
        check_window(signed.timestamp, time.time(), tolerance)
    except SignatureError as exc:
        reason = str(exc)
    keys, unknown = await _webhook(call, workflow_id, trigger_id)
    reason = reason or unknown
    body = await raw_body(request, call.body_limit)
    held = [key.secret for key in keys.secrets] if keys is not None else []
    try:
        verify(signed, held or [_STAND_IN], body)
    except SignatureError as exc:
        if reason is None and keys is not None and not held:
            reason = "the webhook has no secret (made while the registry had no secrets key)"
        reason = reason or str(exc)
    if reason is not None or keys is None:
        raise Refused(reason or "no such webhook")
    return signed, body, keys


async def _webhook(
    call: Call, workflow_id: str, trigger_id: str
) -> tuple[r.WebhookSecrets | None, str | None]:
    """The webhook's secrets and state, or None and why no webhook is there."""
    if not is_tenant_id(call.tenant) or parse_uuid(workflow_id) is None:
        return None, "no such webhook: unknown workflow"
    if not is_trigger_id(trigger_id):
        return None, "no such webhook: unknown trigger"
    try:
        request = r.WebhookSecretGet(workflow_id=workflow_id, trigger_id=trigger_id)
        keys: r.WebhookSecrets = await call.registry(request)
    except FlowmeshError as exc:
        if exc.code is ErrorCode.WORKFLOW_NOT_FOUND:
            return None, "no such webhook: unknown workflow"
        if exc.code is ErrorCode.NOT_FOUND:
            return None, "no such webhook: unknown trigger"
        raise
    if not keys.trigger_exists:
        return None, "no such webhook: the workflow's current version has no such trigger"
    return keys, None


async def _record_refusal(call: Call, reason: str) -> None:
    """Log why a webhook call was refused, and audit it in the path's tenant (if one could
    be named; a failure to record is logged)."""
    info = call.request.match_info
    target = f"webhook:{info['workflow_id'][:64]}/{info['trigger_id'][:64]}"
    log.info("webhook.refused", tenant=call.tenant[:64], target=target, reason=reason)
    if not is_tenant_id(call.tenant):
        return
    entry = r.AuditRecord(
        action="http.webhook_receive", target=target, outcome="denied", detail={"reason": reason}
    )
    try:
        await call.registry(entry)
    except FlowmeshError as exc:
        log.warning("audit.denied_not_recorded", error=exc.detail, reason=reason)


async def _version(call: Call, keys: r.WebhookSecrets) -> r.Workflow:
    """The current version the secrets were read with; 409 unless it may run now."""
    request = r.WorkflowGet(id=keys.workflow_id, version=keys.version)
    workflow: r.Workflow = await call.registry(request)
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
    secret: r.WebhookSecret = await call.registry(request)
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
