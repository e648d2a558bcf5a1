"""Webhooks over HTTP: signed calls start runs; every missing, wrong, expired or replayed
signature, and every unknown workflow or trigger, is a 401 INVALID_SIGNATURE. The module's
own stack (no executor takes its runs), with a short grace for rotated secrets."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import aiohttp
import msgspec
import pytest
import pytest_asyncio
import structlog
from nats.aio.client import Client as Nats

from flowmesh_gateway.replays import replay_key
from flowmesh_gateway.routes.webhooks import REFUSED
from flowmesh_gateway.signatures import message_digest, signature_header
from flowmesh_proto.errors import ErrorCode, problem
from flowmesh_proto.runs import RunQueued
from flowmesh_proto.subjects import stream_names
from flowmesh_registry.settings import RegistrySettings
from tests.helpers import until
from tests.integration.harness import new_tenant, simple_definition, unique

from .conftest import (
    Client,
    Http,
    Isolated,
    Keys,
    gateway_settings,
    isolated_stack,
    started,
)
from .test_runs_control import Bus

pytestmark = pytest.mark.integration

GRACE = timedelta(seconds=2)
HOOK = {"id": "hook", "kind": "webhook"}
CRON = {"id": "nightly", "kind": "cron", "cron": "0 2 * * *"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def isolated(
    registry_settings: RegistrySettings, jwt_keys: tuple[Keys, list[str]], nc: Nats
) -> AsyncIterator[Isolated]:
    async with isolated_stack(registry_settings, jwt_keys, nc, webhook_secret_grace=GRACE) as stack:
        yield stack


@pytest.fixture
def bus(nc: Nats, isolated: Isolated) -> Bus:
    return Bus(nc, isolated.subjects, isolated.streams)


@pytest_asyncio.fixture(loop_scope="session")
async def client(isolated: Isolated) -> Client:
    return Client(isolated.http, await new_tenant(isolated.registry, "w"))


@pytest_asyncio.fixture(loop_scope="session")
async def other_client(isolated: Isolated) -> Client:
    return Client(isolated.http, await new_tenant(isolated.registry, "x"))


class Hook(msgspec.Struct, kw_only=True):
    """A workflow with a webhook trigger, and the secret its creation showed."""

    client: Client
    workflow: dict[str, Any]
    secret: str
    trigger: str = "hook"

    @property
    def path(self) -> str:
        return f"/webhooks/{self.workflow['id']}/{self.trigger}"

    async def send(
        self,
        body: Any,
        *,
        secrets: list[str] | None = None,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
        path: str | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any, Any]:
        data = raw if raw is not None else msgspec.json.encode(body)
        payload: Any = io.BytesIO(data) if len(data) > 1024 else data
        stamp = int(time.time()) if timestamp is None else timestamp
        sent = {
            "Content-Type": "application/json",
            "Flowmesh-Timestamp": str(stamp),
            "Flowmesh-Signature": signature_header(secrets or [self.secret], stamp, data),
            **(headers or {}),
        }
        sent = {k: v for k, v in sent.items() if v}
        return await self.client.http.request(
            "POST", f"{self.client.prefix}{path or self.path}", data=payload, headers=sent
        )


async def a_hook(client: Client, **definition: Any) -> Hook:
    triggers = definition.pop("triggers", [HOOK, CRON])
    workflow = await client.create(unique("hooked"), triggers=triggers, **definition)
    return Hook(client=client, workflow=workflow, secret=workflow["webhook_secrets"]["hook"])


#: Every webhook refusal answers this body (and its request_id).
REFUSED_BODY = msgspec.to_builtins(problem(ErrorCode.INVALID_SIGNATURE, REFUSED))
#: Response headers that may differ between two answers.
_PER_ANSWER = frozenset({"date", "x-request-id"})


async def refusal(hook: Hook, body: Any = None, **kwargs: Any) -> tuple[str, Any]:
    """Why the call was refused (from the log: the answer never says), and the answer's
    body and headers without what is different in every answer."""
    with structlog.testing.capture_logs() as logs:
        status, answer, headers = await hook.send({"n": 1} if body is None else body, **kwargs)
    assert status == 401, answer
    assert set(answer) == set(REFUSED_BODY) | {"request_id"} and answer["request_id"]
    shown = {k.lower(): v for k, v in headers.items() if k.lower() not in _PER_ANSWER}
    reasons = [entry["reason"] for entry in logs if entry["event"] == "webhook.refused"]
    assert len(reasons) == 1, logs
    return reasons[0], ({k: v for k, v in answer.items() if k != "request_id"}, shown)


async def refused(hook: Hook, body: Any = None, **kwargs: Any) -> str:
    """The reason of a refusal, whose answer is the same as every other refusal's."""
    reason, (answer, _) = await refusal(hook, body, **kwargs)
    assert answer == REFUSED_BODY
    return reason


# --- the happy path ------------------------------------------------------------------------


async def test_a_signed_call_starts_a_run(client: Client, bus: Bus) -> None:
    hook = await a_hook(client)
    body = {"order": 42, "items": ["a"]}
    status, answer, headers = await hook.send(
        body,
        headers={
            "User-Agent": "sender/1.0",
            "X-Delivery-Id": "d-1",
            "X-Api-Key": "leaked?",
            "Authorization": "Bearer fm_not_a_key",
            "Cookie": "session=1",
        },
    )
    assert status == 202, answer
    assert answer == {"run_id": answer["run_id"], "status": "queued"}
    assert headers["Location"] == f"{client.prefix}/runs/{answer['run_id']}"
    events = await bus.events(client.tenant.id, answer["run_id"])
    assert len(events) == 1 and isinstance(events[0], RunQueued)
    queued = events[0]
    assert queued.workflow_id == hook.workflow["id"] and queued.version == 1
    assert queued.input == body
    trigger = queued.trigger
    assert (trigger.kind, trigger.trigger_id, trigger.data) == ("webhook", "hook", body)
    assert trigger.headers == {
        "content-type": "application/json",
        "user-agent": "sender/1.0",
        "x-delivery-id": "d-1",
    }
    requests = [req for req, _ in await bus.requests(client.tenant.id)]
    mine = [req for req in requests if req.run_id == answer["run_id"]]
    assert len(mine) == 1 and mine[0].trigger == trigger and mine[0].input == body


async def test_the_secret_is_shown_once(client: Client) -> None:
    hook = await a_hook(client)
    assert hook.secret.startswith("whsec_")
    status, again, _ = await client("GET", f"/workflows/{hook.workflow['id']}")
    assert status == 200 and "webhook_secrets" not in again
    status, listing, _ = await client("GET", "/workflows")
    assert hook.secret not in str(listing)
    status, exported, _ = await client("GET", f"/workflows/{hook.workflow['id']}/export")
    assert status == 200 and hook.secret not in str(exported)


# --- every refusal is a 401 INVALID_SIGNATURE --------------------------------------------------


async def test_wrong_missing_and_malformed_signatures(client: Client) -> None:
    hook = await a_hook(client)
    assert "does not match" in await refused(hook, secrets=["whsec_wrong"])
    assert "Flowmesh-Signature header is missing" in await refused(
        hook, headers={"Flowmesh-Signature": ""}
    )
    assert "Flowmesh-Timestamp header is missing" in await refused(
        hook, headers={"Flowmesh-Timestamp": ""}
    )
    assert "64 hexadecimal" in await refused(hook, headers={"Flowmesh-Signature": "v1=zz"})
    assert "unix seconds" in await refused(hook, headers={"Flowmesh-Timestamp": "soon"})
    # The signature of another body, or of the same body at another time.
    stamp = int(time.time())
    other = signature_header([hook.secret], stamp, b'{"n": 2}')
    assert "does not match" in await refused(hook, headers={"Flowmesh-Signature": other})
    moved = signature_header([hook.secret], stamp - 10, b'{"n":1}')
    detail = await refused(
        hook, timestamp=stamp, headers={"Flowmesh-Signature": moved}, raw=b'{"n":1}'
    )
    assert "does not match" in detail


async def test_expired_and_future_timestamps(client: Client) -> None:
    hook = await a_hook(client)
    now = int(time.time())
    assert "expired" in await refused(hook, timestamp=now - 400)
    assert "in the future" in await refused(hook, timestamp=now + 400)
    status, _, _ = await hook.send({"n": "edge"}, timestamp=now - 240)
    assert status == 202


async def test_a_replayed_request_is_refused(client: Client, bus: Bus) -> None:
    hook = await a_hook(client)
    stamp = int(time.time())
    status, first, _ = await hook.send({"once": True}, timestamp=stamp)
    assert status == 202
    assert "replayed" in await refused(hook, {"once": True}, timestamp=stamp)
    # Signed with the previous secret too, it is still the same request.
    rotated = await rotate(client, hook)
    both = [rotated, hook.secret]
    assert "replayed" in await refused(hook, {"once": True}, timestamp=stamp, secrets=both)
    runs = [req.run_id for req, _ in await bus.requests(client.tenant.id)]
    assert runs.count(first["run_id"]) == 1


async def test_a_retry_after_a_failed_start_starts_the_same_run(
    client: Client, bus: Bus, nc: Nats, isolated: Isolated
) -> None:
    """The replay record is given back when a start fails; the run id stays bound to the
    request (its idempotency key), so the retry finishes that run's start, never a second."""
    hook = await a_hook(client)
    stamp = int(time.time())
    data = msgspec.json.encode({"retry": 1})
    status, first, _ = await hook.send(None, timestamp=stamp, raw=data)
    assert status == 202
    bucket = await nc.jetstream().key_value(isolated.streams.webhook_replays)
    key = replay_key(client.tenant.id, hook.workflow["id"], "hook", message_digest(stamp, data))
    assert await bucket.get(key) is not None
    await bucket.purge(key)  # as the gateway does when a start fails halfway
    status, second, _ = await hook.send(None, timestamp=stamp, raw=data)
    assert (status, second["run_id"]) == (202, first["run_id"])
    runs = [req.run_id for req, _ in await bus.requests(client.tenant.id)]
    assert runs.count(first["run_id"]) == 1


async def test_unknown_workflows_and_triggers(client: Client, other_client: Client) -> None:
    hook = await a_hook(client)
    wid = hook.workflow["id"]
    missing = "0190f5a4-0000-7000-8000-00000000abcd"
    assert "unknown workflow" in await refused(hook, path=f"/webhooks/{missing}/hook")
    assert "unknown workflow" in await refused(hook, path="/webhooks/not-a-uuid/hook")
    assert "unknown trigger" in await refused(hook, path=f"/webhooks/{wid}/nope")
    assert "unknown trigger" in await refused(hook, path=f"/webhooks/{wid}/BAD.ID")
    assert "unknown trigger" in await refused(hook, path=f"/webhooks/{wid}/nightly")  # cron
    # Another tenant's path with this workflow id: no such webhook there.
    foreign = Hook(client=other_client, workflow=hook.workflow, secret=hook.secret)
    assert "unknown workflow" in await refused(foreign)
    nowhere = Hook(client=client, workflow=hook.workflow, secret=hook.secret)
    nowhere.client = Client(client.http, msgspec.structs.replace(client.tenant, id="no-such-t"))
    assert "unknown workflow" in await refused(nowhere)


async def test_every_refusal_is_the_same_answer(
    client: Client, other_client: Client, bus: Bus
) -> None:
    """Missing, malformed, wrong, expired or replayed signatures, unknown tenants, workflows
    and triggers: one body (but its request_id) and the same headers; only the log and the
    audit know why."""
    hook = await a_hook(client)
    wid, now = hook.workflow["id"], int(time.time())
    assert (await hook.send({"once": 1}, timestamp=now))[0] == 202
    foreign = Hook(client=other_client, workflow=hook.workflow, secret=hook.secret)
    nowhere = Hook(
        client=Client(client.http, msgspec.structs.replace(client.tenant, id="nowhere")),
        workflow=hook.workflow,
        secret=hook.secret,
    )
    cases: list[tuple[Hook, dict[str, Any], str]] = [
        (hook, {"headers": {"Flowmesh-Signature": ""}}, "header is missing"),
        (hook, {"headers": {"Flowmesh-Timestamp": ""}}, "header is missing"),
        (hook, {"headers": {"Flowmesh-Signature": "v1=zz"}}, "64 hexadecimal"),
        (hook, {"secrets": ["whsec_wrong"]}, "does not match"),
        (hook, {"timestamp": now - 400}, "expired"),
        (hook, {"timestamp": now + 400}, "in the future"),
        (hook, {"body": {"once": 1}, "timestamp": now}, "replayed"),
        (hook, {"path": "/webhooks/0190f5a4-0000-7000-8000-00000000abcd/hook"}, "unknown workflow"),
        (hook, {"path": "/webhooks/not-a-uuid/hook"}, "unknown workflow"),
        (hook, {"path": f"/webhooks/{wid}/nope"}, "unknown trigger"),
        (hook, {"path": f"/webhooks/{wid}/nightly"}, "unknown trigger"),
        (foreign, {}, "unknown workflow"),
        (nowhere, {}, "unknown workflow"),
    ]
    answers = []
    for target, options, why in cases:
        reason, answer = await refusal(target, **options)
        assert why in reason, (options, reason)
        answers.append(answer)
    assert answers[0][0] == REFUSED_BODY
    assert all(answer == answers[0] for answer in answers), answers
    status, audit, _ = await client("GET", "/audit?limit=100&action=http.webhook_receive")
    assert status == 200
    reasons = [entry["detail"]["reason"] for entry in audit["items"]]
    assert any("does not match" in reason for reason in reasons)
    assert any("replayed" in reason for reason in reasons)
    assert hook.secret not in str(audit)


async def test_a_trigger_removed_from_the_current_version(client: Client) -> None:
    hook = await a_hook(client)
    definition = simple_definition(hook.workflow["name"], triggers=[CRON])
    status, _, _ = await client("PUT", f"/workflows/{hook.workflow['id']}", json=definition)
    assert status == 200
    assert "no such trigger" in await refused(hook)


async def test_failures_are_rate_limited_per_client(
    isolated: Isolated, jwt_keys: tuple[Keys, list[str]], client: Client
) -> None:
    keys, files = jwt_keys
    settings = gateway_settings(
        isolated.registry, files, auth_failure_rate=0.01, auth_failure_burst=3
    )
    async with AsyncExitStack() as stack:
        gateway = await started(settings, stack)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        strict = Client(Http(session, f"http://127.0.0.1:{gateway.port}", keys), client.tenant)
        hook = await a_hook(strict)
        statuses = [(await hook.send({"n": i}, secrets=["whsec_wrong"]))[0] for i in range(4)]
        assert statuses == [401, 401, 401, 429]
        status, problem, headers = await hook.send({"n": 5}, secrets=["whsec_wrong"])
        assert (status, problem["code"]) == (429, "RATE_LIMITED") and "Retry-After" in headers
        # Only failures count: a good signature from the same client still passes.
        assert (await hook.send({"n": "good"}))[0] == 202


# --- past the signature: body, state, input ----------------------------------------------------


async def test_the_body_is_json_within_the_limit(client: Client) -> None:
    hook = await a_hook(client)
    status, problem, _ = await hook.send(
        None, raw=b"plain text", headers={"Content-Type": "text/plain"}
    )
    assert (status, problem["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    status, problem, _ = await hook.send(None, raw=b"{broken")
    assert (status, problem["code"]) == (400, "BAD_REQUEST")
    big = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
    status, problem, _ = await hook.send(None, raw=big)
    assert (status, problem["code"]) == (413, "PAYLOAD_TOO_LARGE")


async def test_disabled_workflows_and_triggers(client: Client) -> None:
    hook = await a_hook(client)
    status, _, _ = await client(
        "PATCH", f"/workflows/{hook.workflow['id']}", json={"enabled": False}
    )
    assert status == 200
    status, problem, _ = await hook.send({"n": 1})
    assert (status, problem["code"]) == (409, "WORKFLOW_DISABLED")
    off = await a_hook(client, triggers=[{**HOOK, "enabled": False}])
    status, problem, _ = await off.send({"n": 1})
    assert (status, problem["code"]) == (409, "WORKFLOW_DISABLED") and "trigger" in problem[
        "detail"
    ]
    # Refused for its state, the request was not spent: once enabled it is accepted.
    stamp = int(time.time())
    status, _, _ = await hook.send({"later": 1}, timestamp=stamp)
    assert status == 409
    await client("PATCH", f"/workflows/{hook.workflow['id']}", json={"enabled": True})
    status, _, _ = await hook.send({"later": 1}, timestamp=stamp)
    assert status == 202


async def test_the_body_is_checked_against_the_input_schema(client: Client) -> None:
    schema = {"type": "object", "required": ["total"]}
    hook = await a_hook(client, input_schema=schema)
    status, problem, _ = await hook.send({"no_total": 1})
    assert (status, problem["code"]) == (422, "VALIDATION_FAILED")
    status, _, _ = await hook.send({"total": 3})
    assert status == 202


# --- secrets: rotation, grace, never shown again -------------------------------------------------


async def rotate(client: Client, hook: Hook, token: str | None = None) -> str:
    path = f"/workflows/{hook.workflow['id']}/triggers/{hook.trigger}/secret"
    status, body, _ = await client("POST", path, token=token)
    assert status == 201, body
    assert sorted(body) == ["created_at", "secret", "trigger_id", "workflow_id"]
    assert (body["workflow_id"], body["trigger_id"]) == (hook.workflow["id"], hook.trigger)
    secret: str = body["secret"]
    return secret


async def test_rotation_with_a_grace_period(client: Client) -> None:
    hook = await a_hook(client)
    old = hook.secret
    new = await rotate(client, hook, token=await client.key("editor"))
    assert new != old
    assert (await hook.send({"n": "new"}, secrets=[new]))[0] == 202
    assert (await hook.send({"n": "old"}, secrets=[old]))[0] == 202
    assert (await hook.send({"n": "both"}, secrets=[new, old]))[0] == 202

    async def old_refused() -> bool:
        status, _, _ = await hook.send({"n": time.time()}, secrets=[old])
        return status == 401

    await until(old_refused, timeout=GRACE.total_seconds() + 5, interval=0.25)
    assert "does not match" in await refused(hook, secrets=[old])
    assert (await hook.send({"n": "still new"}, secrets=[new]))[0] == 202


async def test_rotation_needs_the_editor_role_and_a_webhook_trigger(client: Client) -> None:
    hook = await a_hook(client)
    base = f"/workflows/{hook.workflow['id']}/triggers"
    status, problem, _ = await client(
        "POST", f"{base}/hook/secret", token=await client.key("operator")
    )
    assert (status, problem["code"]) == (403, "FORBIDDEN")
    for path, code in [
        (f"{base}/nightly/secret", "NOT_FOUND"),
        (f"{base}/missing/secret", "NOT_FOUND"),
        (
            "/workflows/0190f5a4-0000-7000-8000-00000000abcd/triggers/hook/secret",
            "WORKFLOW_NOT_FOUND",
        ),
    ]:
        status, problem, _ = await client("POST", path)
        assert (status, problem["code"]) == (404, code), path


async def test_secrets_appear_in_no_log_and_no_audit_entry(client: Client) -> None:
    with structlog.testing.capture_logs() as logs:
        hook = await a_hook(client)
        new = await rotate(client, hook)
        assert (await hook.send({"n": 1}, secrets=[new]))[0] == 202
        await refused(hook, secrets=["whsec_wrong"])
    assert logs
    for secret in (hook.secret, new):
        assert secret not in repr(logs)
    status, audit, _ = await client("GET", "/audit?limit=100")
    assert status == 200
    actions = {entry["action"] for entry in audit["items"]}
    assert {"webhook.secret_create", "webhook.secret_rotate"} <= actions
    assert hook.secret not in str(audit) and new not in str(audit)


async def test_the_replay_bucket_is_made_at_start(nc: Nats, isolated: Isolated) -> None:
    name = stream_names(isolated.registry.settings.stream_prefix).webhook_replays
    status = await (await nc.jetstream().key_value(name)).status()
    assert status.ttl is not None and status.ttl >= 2 * 300
