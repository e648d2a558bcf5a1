"""The registry test harness: a real registry (in this process) on the session's PostgreSQL
database and NATS server, and helpers to call it. Fixtures are registered by
``tests/integration/conftest.py`` so every integration test shares one registry."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import msgspec
import pytest
import pytest_asyncio

from flowmesh_proto import registry as r
from flowmesh_proto.errors import Problem
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_registry.main import RegistryApp, start_registry
from flowmesh_registry.secretbox import new_key
from flowmesh_registry.settings import RegistrySettings
from flowmesh_shared.rpc import RpcClient

T = TypeVar("T")

PLATFORM = "platform:test-admin"
GATEWAY = "service:gateway"


class Registry:
    """What a test needs: the app, a client, and shortcuts to call operations."""

    def __init__(self, app: RegistryApp, client: RpcClient, settings: RegistrySettings) -> None:
        self.app = app
        self.client = client
        self.settings = settings

    async def call(
        self,
        operation: str,
        request: msgspec.Struct,
        *,
        tenant: str | None = None,
        principal: str | None = None,
    ) -> Any:
        request_type, result_type = r.OPERATIONS[operation]
        assert isinstance(request, request_type), f"{operation} takes a {request_type.__name__}"
        return await self.client.send(
            operation, request, result_type, tenant=tenant, principal=principal
        )


class TenantHandle(msgspec.Struct, frozen=True):
    id: str
    admin_key: str
    admin_key_id: str

    @property
    def principal(self) -> str:
        return f"key:{self.id}:{self.admin_key_id}"


def stream_prefix_of(streams: StreamNames) -> str:
    return streams.run_requests.removesuffix("_RUN_REQUESTS")


@pytest.fixture(scope="session")
def registry_settings(
    postgres_url: str, nats_server: Any, subjects: Subjects, streams: StreamNames
) -> RegistrySettings:
    return RegistrySettings(
        database_url=postgres_url,
        nats_url=nats_server.url,
        subject_prefix=subjects.prefix,
        stream_prefix=stream_prefix_of(streams),
        http_port=0,
        outbox_poll_interval=0.2,
        max_definition_bytes=64 * 1024,
        max_nodes=50,
        max_edges=100,
        secrets_key=new_key(),
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def registry(registry_settings: RegistrySettings, nc: Any) -> AsyncIterator[Registry]:
    async with AsyncExitStack() as stack:
        app = await start_registry(registry_settings, stack)
        client = RpcClient(nc, Subjects(registry_settings.subject_prefix), timeout=5.0)
        yield Registry(app, client, registry_settings)


async def new_tenant(registry: Registry, prefix: str = "t") -> TenantHandle:
    tenant_id = f"{prefix}-{secrets.token_hex(4)}"
    created = await registry.call(
        "tenant_create", r.TenantCreate(id=tenant_id, name=tenant_id), principal=PLATFORM
    )
    return TenantHandle(
        id=created.id, admin_key=created.admin_key.key, admin_key_id=created.admin_key.id
    )


@pytest_asyncio.fixture(loop_scope="session")
async def tenant(registry: Registry) -> TenantHandle:
    return await new_tenant(registry, "a")


@pytest_asyncio.fixture(loop_scope="session")
async def other_tenant(registry: Registry) -> TenantHandle:
    return await new_tenant(registry, "b")


def simple_definition(name: str, **extra: Any) -> dict[str, Any]:
    """A small valid workflow: a transform feeding a condition and two branches."""
    return {
        "name": name,
        "description": "Charge, then decide.",
        "category": "automation",
        "tags": ["orders"],
        "vars": {"threshold": 100},
        "nodes": [
            {
                "id": "prepare",
                "type": "transform",
                "parameters": {"output": {"total": "{{ trigger.data.total }}"}},
            },
            {
                "id": "big",
                "type": "condition",
                "parameters": {"expression": "nodes.prepare.output.total > vars.threshold"},
            },
            {"id": "notify", "type": "noop"},
            {"id": "skip", "type": "noop"},
        ],
        "edges": [
            {"from": "prepare", "to": "big"},
            {"from": "big", "to": "notify", "when": "true"},
            {"from": "big", "to": "skip", "when": "false"},
        ],
        **extra,
    }


class Api:
    """Calls on behalf of one tenant's admin key."""

    def __init__(self, registry: Registry, tenant: TenantHandle) -> None:
        self.registry = registry
        self.tenant = tenant

    async def __call__(self, operation: str, request: msgspec.Struct) -> Any:
        return await self.registry.call(
            operation, request, tenant=self.tenant.id, principal=self.tenant.principal
        )

    async def create(self, name: str, **extra: Any) -> r.Workflow:
        result: r.Workflow = await self(
            "workflow_create", r.WorkflowCreate(definition=simple_definition(name, **extra))
        )
        return result


@pytest.fixture
def api(registry: Registry, tenant: TenantHandle) -> Api:
    return Api(registry, tenant)


@pytest.fixture
def other_api(registry: Registry, other_tenant: TenantHandle) -> Api:
    return Api(registry, other_tenant)


def unique(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"


async def raw_call(
    registry: Registry, nc: Any, operation: str, payload: bytes, headers: dict[str, str]
) -> Problem:
    """Send ``payload`` as it is and return the problem the registry answers with."""
    reply = await nc.request(
        Subjects(registry.settings.subject_prefix).rpc("registry", operation),
        payload,
        timeout=5,
        headers=headers or None,
    )
    assert reply.headers and reply.headers.get("Nats-Service-Error-Code"), reply.data
    return msgspec.json.decode(reply.data, type=Problem)
