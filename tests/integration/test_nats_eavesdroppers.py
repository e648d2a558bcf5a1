"""Eavesdroppers on the whole stack (DESIGN section 12, first bullet; issue 13).

``make dev``'s scripts/dev.py runs the real services (the registry on PostgreSQL) on one
nats-server 2.15 started from the committed ``deploy/nats`` configuration, each service
signed in as its own NATS user. Two tenants, known in advance so that their accounts are
in ``tenants.conf`` when the server starts (a tenant's first user needs a restart), get a
worker, a publisher and a reader each from ``flowmesh nats-user``; each of those users
subscribes to everything it dares (a refused subscription is a pass, and recorded).

While they listen, everything goes through the real gateway over HTTP: the platform admin
creates the tenants and a third one (whose admin key travels in a ``tenant_create`` RPC
reply), both tenants create API keys and put secrets, and run three workflows each: an
``http`` step sending the secret to a server on loopback, a ``task`` step served by the
tenant's worker, and one started by an event the tenant's publisher sends over NATS.
Every run must succeed (the traffic really flowed), and no eavesdropper may have heard
another tenant's id, an API key, a secret, the third tenant's admin key or any service's
reply; a reader hears its own tenant's run events only. A forged reply into a service's
inbox is refused, and no service logs a traceback.

Before issue 13 (bbf861f), the worker credential was the shared ``worker`` user of the
FLOWMESH account, allowed to subscribe to ``_INBOX.>``, and the services used NATS's
default inbox prefix ``_INBOX``. Held by a tenant, that user's ``_INBOX.>`` subscription
below would have been accepted (``refused`` differs from what the minted permissions
allow) and would have received every service's RPC replies: the gateway's
``tenant_create`` reply with the third tenant's admin key, each ``apikey_create`` reply
(``fm_...``) and the executor's ``secret_resolve`` reply (the secret values). Each of
those fails an assertion of ``overheard``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from nats.aio.client import Client

from flowmesh_devtools.localstack import LOOPBACK, free_port
from flowmesh_shared.natsconn import SERVICES, service_inbox
from flowmesh_worker import TaskContext, Worker
from tests.e2e.devstack import DevStack, dev_stack
from tests.helpers import until
from tests.natsdeploy import (
    SERVICE_USERS,
    Deployed,
    Violations,
    account_passwords,
    copy_config,
    event_body,
    mint,
    single_node,
)

pytestmark = pytest.mark.integration

TENANTS = ("acme", "globex")
THIRD = "initech"
ROLES = ("publisher", "reader", "worker")
QUEUE = "jobs"
EVENT = "order.placed"
SECRET = "TOKEN"
ADMIN_TOKEN = "fmadm_" + secrets.token_urlsafe(24)
FORGED = f"{service_inbox('gateway')}.x"
#: What every eavesdropper tries to hear: everything, every inbox, the JetStream API.
SNOOPED = ("_INBOX.>", *(f"_INBOX_{s}.>" for s in SERVICES), "$JS.>", ">")
#: Where the catalogue counts both tenants' event-triggered workflows.
CATALOGUE = "flowmesh_scheduler_catalogue_workflows"


def snooped_by(tenant: str) -> tuple[str, ...]:
    """SNOOPED, and the run subjects and worker inboxes of the tenant and the other one."""
    other = next(t for t in TENANTS if t != tenant)
    extra = [f"fm.{t}.runs.*" for t in (tenant, other, "*")]
    extra += [f"_INBOX_t_{t}.>" for t in (tenant, other)]
    return (*SNOOPED, *extra)


@dataclass
class Stack:
    deployed: Deployed
    dev: DevStack
    origin: Origin


@dataclass
class Origin:
    """A server on loopback that http steps call: it keeps the Authorization header it got
    from each tenant and echoes it back, so only redaction keeps it out of the run."""

    base: str = ""
    authorizations: dict[str, str] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        self.authorizations[request.match_info["tenant"]] = authorization
        return web.json_response({"you_sent": authorization})


@pytest_asyncio.fixture(loop_scope="session")
async def stack(tmp_path: Path, postgres_url: str) -> AsyncIterator[Stack]:
    config = copy_config(tmp_path)
    passwords = account_passwords()
    users: dict[str, dict[str, Any]] = {}
    for tenant in TENANTS:  # before the server starts: a tenant's first user needs one
        for role in ROLES:
            options = ("--queue", QUEUE) if role == "worker" else ()
            minted = await mint(config, tenant, role, None, *options)
            users[minted["user"]] = minted
    origin = Origin()
    app = web.Application()
    app.router.add_post("/hook/{tenant}", origin.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(runner.cleanup)
        port = free_port()
        await web.TCPSite(runner, LOOPBACK, port).start()
        origin.base = f"http://{LOOPBACK}:{port}"
        node = await stack.enter_async_context(single_node(config, passwords))
        deployed = Deployed(node, config, passwords)
        deployed.users = users
        env = {f"FLOWMESH_{s.upper()}_NATS_URL": deployed.url(s) for s in SERVICE_USERS}
        env["FLOWMESH_ADMIN_TOKEN"] = ADMIN_TOKEN
        # dev.py itself (the demo tenant, over the registry's RPC) connects as the gateway
        dev = await stack.enter_async_context(
            dev_stack(nats_url=deployed.url("gateway"), database_url=postgres_url, env=env)
        )
        yield Stack(deployed, dev, origin)


class Eavesdropper:
    """A tenant user subscribed to everything it dares: what it heard, what was refused."""

    def __init__(self, user: str, tenant: str) -> None:
        self.user, self.tenant = user, tenant
        self.violations = Violations()
        self.heard: list[tuple[str, bytes]] = []
        self.nc: Client | None = None

    async def start(self, deployed: Deployed) -> Client:
        self.nc = nc = await deployed.connect(self.user, self.violations)
        for subject in snooped_by(self.tenant):
            await nc.subscribe(subject, cb=self._hear)
        await nc.flush()
        return nc

    async def _hear(self, msg: Any) -> None:
        headers = json.dumps(msg.headers or {}).encode()
        self.heard.append((msg.subject, msg.data + b"\n" + headers))

    def refused(self) -> set[str]:
        return {s for s in snooped_by(self.tenant) if self.violations.about(s)}


class Api:
    """The gateway's HTTP API with one credential."""

    def __init__(self, http: aiohttp.ClientSession, base: str, credential: str) -> None:
        self.http, self.base = http, base
        self.headers = {"Authorization": f"Bearer {credential}"}

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        async with self.http.request(
            method, self.base + path, json=body, headers=self.headers
        ) as response:
            answer = await response.json(content_type=None)
            assert response.status == expect, (method, path, response.status, answer)
            return answer


@dataclass
class Tenant:
    """One tenant's side of the test: its credentials, secret, workflows and runs."""

    id: str
    secret: str = field(default_factory=lambda: f"s3cr3t-{secrets.token_hex(12)}")
    keys: list[str] = field(default_factory=list)
    """Its API keys: the admin key of its creation, then the ones it creates."""
    workflows: dict[str, str] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)


def definitions(tenant: str, origin: Origin) -> dict[str, dict[str, Any]]:
    """The tenant's three workflows: http with its secret, task, event-triggered."""
    call = {
        "id": "call",
        "type": "http",
        "parameters": {
            "url": f"{origin.base}/hook/{tenant}",
            "method": "POST",
            "headers": {"Authorization": f"Bearer {{{{ secrets.{SECRET} }}}}"},
            "body": {"tenant": tenant},
        },
    }
    work = {
        "id": "work",
        "type": "task",
        "parameters": {"queue": QUEUE, "input": "{{ trigger.data }}", "timeout": "PT20S"},
    }
    echo = {"id": "echo", "type": "transform", "parameters": {"output": "{{ trigger.data }}"}}
    trigger = {"id": "on-order", "kind": "event", "event": EVENT}
    return {
        "http": {"name": "eaves-http", "output": "call", "nodes": [call]},
        "task": {"name": "eaves-task", "output": "work", "nodes": [work]},
        "event": {"name": "eaves-event", "output": "echo", "nodes": [echo], "triggers": [trigger]},
    }


async def armed(http: aiohttp.ClientSession, dev: DevStack) -> bool:
    """Whether the scheduler holds both tenants' event triggers (its catalogue's metric)."""
    async with http.get(f"{dev.info['scheduler_health_url']}/metrics") as response:
        for line in (await response.text()).splitlines():
            name, _, value = line.partition(" ")
            if name == CATALOGUE:
                return float(value) >= len(TENANTS)
    return False


async def prepare(http: aiohttp.ClientSession, stack: Stack, tenant: Tenant) -> Api:
    """API keys, the secret and the workflows of ``tenant``; its editor's API."""
    base = f"{stack.dev.gateway_url}/api/v1/{tenant.id}"
    admin = Api(http, base, tenant.keys[0])
    created = await admin.call("POST", "/api-keys", {"name": "ops", "role": "editor"}, 201)
    tenant.keys.append(created["key"])
    await admin.call("PUT", f"/secrets/{SECRET}", {"value": tenant.secret})
    editor = Api(http, base, created["key"])
    for name, definition in definitions(tenant.id, stack.origin).items():
        tenant.workflows[name] = (await editor.call("POST", "/workflows", definition, 201))["id"]
    return editor


async def run_all(editor: Api, tenant: Tenant, publisher: Client) -> None:
    """Start the tenant's three runs: two over HTTP, one by an event over NATS."""
    for name in ("http", "task"):
        body = {"input": {"tenant": tenant.id, "n": name}}
        started = await editor.call(
            "POST", f"/workflows/{tenant.workflows[name]}/execute", body, 202
        )
        tenant.runs[name] = started["run_id"]
    event_id = f"ev-{secrets.token_hex(4)}"
    ack = await publisher.jetstream().publish(
        f"fm.{tenant.id}.events.{EVENT}", event_body(tenant.id, EVENT, event_id, who=tenant.id)
    )
    assert ack.stream == "FM_EVENTS" and not ack.duplicate

    async def event_run() -> str | None:
        path = f"/runs?workflow_id={tenant.workflows['event']}&trigger_kind=event"
        items = (await editor.call("GET", path))["items"]
        return str(items[0]["id"]) if items else None

    tenant.runs["event"] = await until(event_run, timeout=15, interval=0.1, message="event run")


async def finished(editor: Api, tenant: Tenant) -> dict[str, Any]:
    """The tenant's runs once all have ended."""

    async def ended() -> dict[str, Any] | None:
        runs = {name: await editor.call("GET", f"/runs/{rid}") for name, rid in tenant.runs.items()}
        done = all(run["status"] not in ("queued", "running") for run in runs.values())
        return runs if done else None

    found: dict[str, Any] = await until(ended, timeout=20, interval=0.1, message=tenant.id)
    return found


async def listen(spies: list[Eavesdropper], deployed: Deployed, closing: AsyncExitStack) -> None:
    """Each spy subscribed; refused all it tried but what its minted permissions allow."""
    for spy in spies:
        closing.push_async_callback((await spy.start(deployed)).close)
    for spy in spies:
        expected = set(snooped_by(spy.tenant)) - set(deployed.users[spy.user]["subscribe"])
        await until(lambda s=spy, e=expected: s.refused() == e, timeout=5, message=spy.user)


async def serve_and_run(stack: Stack, tenant: Tenant, editor: Api, closing: AsyncExitStack) -> None:
    """The tenant's worker serving its queue, its publisher connected; its runs started."""
    worker = await Worker.connect(
        stack.deployed.url(f"{tenant.id}-worker"), tenant=tenant.id, poll_interval=0.2
    )

    @worker.task(QUEUE)
    async def work(input: Any, ctx: TaskContext) -> Any:
        return {"served_by": tenant.id, "for": ctx.tenant, "input": input}

    await closing.enter_async_context(worker)
    publisher = await stack.deployed.connect(f"{tenant.id}-publisher")
    closing.push_async_callback(publisher.close)
    await run_all(editor, tenant, publisher)


async def forge(spies: list[Eavesdropper]) -> None:
    """Each spy publishes a reply into the gateway's inbox: each is refused."""
    for spy in spies:
        assert spy.nc is not None
        await spy.nc.publish(FORGED, b'{"tenant": "acme", "valid": true}')
        await spy.nc.flush()
        await until(lambda s=spy: s.violations.about(FORGED), timeout=5, message=spy.user)


async def test_no_tenant_user_hears_another_tenant_or_a_service_reply(stack: Stack) -> None:
    dev = stack.dev
    spies = [Eavesdropper(f"{t}-{role}", t) for t in TENANTS for role in ROLES]
    async with AsyncExitStack() as closing:
        await listen(spies, stack.deployed, closing)
        http = await closing.enter_async_context(aiohttp.ClientSession())
        platform = Api(http, f"{dev.gateway_url}/api/v1/admin", ADMIN_TOKEN)
        tenants = []
        for tenant_id in TENANTS:
            created = await platform.call("POST", "/tenants", {"id": tenant_id}, 201)
            tenants.append(Tenant(tenant_id, keys=[created["admin_key"]["key"]]))
        third = await platform.call("POST", "/tenants", {"id": THIRD, "name": "Third"}, 201)
        editors = [await prepare(http, stack, tenant) for tenant in tenants]
        await until(lambda: armed(http, dev), timeout=10, interval=0.1, message="triggers armed")
        for tenant, editor in zip(tenants, editors, strict=True):
            await serve_and_run(stack, tenant, editor, closing)
        runs = [await finished(e, t) for t, e in zip(tenants, editors, strict=True)]
        await forge(spies)
        await asyncio.sleep(0.3)  # time for a wrongly routed message to arrive too

    for tenant, found in zip(tenants, runs, strict=True):
        check_runs(tenant, found, stack.origin)
    needles = {f"{t.id}'s secret": t.secret.encode() for t in tenants}
    needles |= {f"{t.id}'s key {n}": k.encode() for t in tenants for n, k in enumerate(t.keys)}
    needles |= {f"{THIRD}'s admin key": third["admin_key"]["key"].encode(), "an API key": b"fm_"}
    needles["the demo tenant's key"] = dev.info["api_key"].encode()
    problems = [line for spy in spies for line in overheard(spy, tenants, needles)]
    assert problems == [], "\n".join(problems)
    log = dev.log.read_text(errors="replace")
    assert "Traceback" not in log, dev.output()
    assert "permissions violation" not in log.lower(), dev.output()


def check_runs(tenant: Tenant, runs: dict[str, Any], origin: Origin) -> None:
    """Every run succeeded, each as its tenant's, and the secret reached the origin only."""
    for name, run in runs.items():
        assert run["status"] == "succeeded", (tenant.id, name, run)
    assert origin.authorizations[tenant.id] == f"Bearer {tenant.secret}"
    assert tenant.secret not in json.dumps(runs["http"])  # redacted from the echo
    assert runs["http"]["output"]["status"] == 200
    assert runs["task"]["output"] == {
        "served_by": tenant.id,
        "for": tenant.id,
        "input": {"tenant": tenant.id, "n": "task"},
    }
    assert runs["event"]["output"] == {"who": tenant.id}


def overheard(spy: Eavesdropper, tenants: list[Tenant], needles: dict[str, bytes]) -> list[str]:
    """What ``spy`` heard that it must not have: one line per message and reason."""
    other = next(t.id for t in tenants if t.id != spy.tenant)
    inboxes = tuple(service_inbox(s) for s in SERVICES)
    found = []
    for subject, data in spy.heard:
        why = [
            f"tenant {n!r}" for n in (other, THIRD, "demo") if n.encode() in data or n in subject
        ]
        why += [what for what, needle in needles.items() if needle in data]
        if subject.startswith(inboxes) or b'"admin_key"' in data:
            why.append("a service's reply")
        found += [f"{spy.user} heard {', '.join(why)} on {subject}"] if why else []
    if spy.user.endswith("-reader"):  # its own tenant's run events, of each of its runs
        own = next(t for t in tenants if t.id == spy.tenant)
        subjects = {subject for subject, _ in spy.heard}
        if subjects != {f"fm.{own.id}.runs.{run_id}" for run_id in own.runs.values()}:
            found.append(f"{spy.user} heard {sorted(subjects)}, not each of its runs")
        for subject, data in spy.heard:
            if json.loads(data.split(b"\n", 1)[0])["tenant"] != own.id:
                found.append(f"{spy.user} heard another tenant's run event on {subject}")
    return found
