"""A real gateway (in this process) in front of the session's real registry, over real HTTP."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import jwt
import msgspec
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from nats.aio.client import Client as Nats
from nats.js.errors import NotFoundError

from flowmesh_gateway.main import GatewayApp, start_gateway
from flowmesh_gateway.settings import GatewaySettings
from flowmesh_proto.subjects import StreamNames, Subjects, stream_names
from flowmesh_registry.main import start_registry
from flowmesh_registry.settings import RegistrySettings
from flowmesh_shared.rpc import RpcClient
from tests.integration.harness import Registry, TenantHandle, new_tenant, simple_definition

ADMIN_TOKEN = "test-platform-admin-token-long-enough-to-start"
HS256_SECRET = "test-hs256-secret-that-is-long-enough-for-hmac"


class Keys(msgspec.Struct, frozen=True):
    rsa_private: Any
    ec_private: Any
    rsa_public_pem: bytes


class Http:
    """An HTTP client for one gateway, with helpers for credentials."""

    def __init__(self, session: aiohttp.ClientSession, base: str, keys: Keys) -> None:
        self.session, self.base, self.keys = session, base, keys

    def url(self, path: str) -> str:
        return self.base + path

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.url(path), json=json, data=data, headers=sent
        ) as resp:
            raw = await resp.read()
            body: Any = raw
            if resp.content_type in ("application/json", "application/problem+json") and raw:
                body = msgspec.json.decode(raw)
            return resp.status, body, resp.headers

    def jwt(self, tenant: str, roles: Any, *, alg: str = "HS256", **claims: Any) -> str:
        payload = {"tenant": tenant, "sub": "alice", "roles": roles, "exp": time.time() + 300}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        key: Any = {
            "HS256": HS256_SECRET,
            "RS256": self.keys.rsa_private,
            "ES256": self.keys.ec_private,
        }[alg]
        return jwt.encode(payload, key, algorithm=alg)


@pytest.fixture(scope="session")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Keys, list[str]]:
    folder: Path = tmp_path_factory.mktemp("jwt")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    files = []
    for name, key in (("rsa.pem", rsa_key), ("ec.pem", ec_key)):
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (folder / name).write_bytes(pem)
        files.append(str(folder / name))
    rsa_pem = (folder / "rsa.pem").read_bytes()
    return Keys(rsa_private=rsa_key, ec_private=ec_key, rsa_public_pem=rsa_pem), files


def gateway_settings(registry: Registry, files: list[str], **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "nats_url": registry.settings.nats_url,
        "subject_prefix": registry.settings.subject_prefix,
        "stream_prefix": registry.settings.stream_prefix,
        "http_port": 0,
        "admin_token": ADMIN_TOKEN,
        "jwt_hs256_secret": HS256_SECRET,
        "jwt_public_key_files": files,
        "jwt_leeway_seconds": 5.0,
        "key_cache_seconds": 1.0,
        "rpc_timeout": 3.0,
        "tenant_rate": 10_000.0,
        "tenant_burst": 10_000,
        "key_rate": 10_000.0,
        "key_burst": 10_000,
        "auth_failure_rate": 1000.0,
        "auth_failure_burst": 1000,
        "credential_max_holds": 10_000,
        "tenant_max_holds": 10_000,
        "log_level": "warning",
    }
    values.update(overrides)
    return GatewaySettings(**values)


async def started(settings: GatewaySettings, stack: AsyncExitStack) -> GatewayApp:
    return await start_gateway(settings, stack)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def http(
    registry: Registry, jwt_keys: tuple[Keys, list[str]], nc: Nats
) -> AsyncIterator[Http]:
    keys, files = jwt_keys
    async with AsyncExitStack() as stack:
        stack.push_async_callback(delete_buckets, nc, registry.settings.stream_prefix)
        gateway = await started(gateway_settings(registry, files), stack)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        yield Http(session, f"http://127.0.0.1:{gateway.port}", keys)


async def delete_buckets(nc: Nats, prefix: str) -> None:
    """The gateway's buckets outlive it on the server: the session's are removed at its end."""
    names = stream_names(prefix)
    buckets = (
        names.run_control,
        names.idempotency,
        names.webhook_replays,
        names.quotas,
        names.sessions,
    )
    for bucket in buckets:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_key_value(bucket)


class Isolated(msgspec.Struct, frozen=True, kw_only=True):
    """A registry and a gateway of their own: a database, subjects and streams no other
    service of the session uses (the session's executor takes every run request it sees)."""

    http: Http
    registry: Registry
    subjects: Subjects
    streams: StreamNames


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def isolated(
    registry_settings: RegistrySettings,
    jwt_keys: tuple[Keys, list[str]],
    nc: Nats,
) -> AsyncIterator[Isolated]:
    async with isolated_stack(registry_settings, jwt_keys, nc) as stack:
        yield stack


@asynccontextmanager
async def isolated_stack(
    registry_settings: RegistrySettings,
    jwt_keys: tuple[Keys, list[str]],
    nc: Nats,
    **registry_overrides: Any,
) -> AsyncIterator[Isolated]:
    """What :func:`isolated` gives, with registry settings of the caller's choosing."""
    keys, files = jwt_keys
    prefix = f"fmi{secrets.token_hex(4)}"
    parts = urlsplit(registry_settings.database_url)
    database = f"{parts.path.lstrip('/')}_{prefix}"
    server = await asyncpg.connect(registry_settings.database_url)
    try:
        await server.execute(f'CREATE DATABASE "{database}"')
    finally:
        await server.close()
    settings = msgspec.structs.replace(
        registry_settings,
        database_url=urlunsplit(parts._replace(path=f"/{database}")),
        subject_prefix=prefix,
        stream_prefix=prefix.upper(),
        **registry_overrides,
    )
    try:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(_delete_streams, nc, settings.stream_prefix)
            app = await start_registry(settings, stack)
            own = Registry(app, RpcClient(nc, Subjects(prefix), timeout=5.0), settings)
            gateway = await started(gateway_settings(own, files), stack)
            session = await stack.enter_async_context(aiohttp.ClientSession())
            yield Isolated(
                http=Http(session, f"http://127.0.0.1:{gateway.port}", keys),
                registry=own,
                subjects=Subjects(prefix),
                streams=stream_names(settings.stream_prefix),
            )
    finally:
        server = await asyncpg.connect(registry_settings.database_url)
        try:
            await server.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await server.close()


async def _delete_streams(nc: Nats, prefix: str) -> None:
    await delete_buckets(nc, prefix)
    names = stream_names(prefix)
    for name in (
        names.run_requests,
        names.run_events,
        names.events,
        names.tasks,
        names.registry,
        names.timers,
    ):
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(name)


class Client:
    """One tenant's admin key against the gateway, with shortcuts."""

    def __init__(self, http: Http, tenant: TenantHandle) -> None:
        self.http, self.tenant = http, tenant
        self.prefix = f"/api/v1/{tenant.id}"

    async def __call__(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> tuple[int, Any, Any]:
        return await self.http.request(
            method, self.prefix + path, token=token or self.tenant.admin_key, **kwargs
        )

    async def create(self, name: str, **extra: Any) -> dict[str, Any]:
        status, body, _ = await self("POST", "/workflows", json=simple_definition(name, **extra))
        assert status == 201, body
        result: dict[str, Any] = body
        return result

    async def key(self, role: str) -> str:
        status, body, _ = await self("POST", "/api-keys", json={"name": role, "role": role})
        assert status == 201, body
        key: str = body["key"]
        return key


@pytest_asyncio.fixture(loop_scope="session")
async def client(http: Http, registry: Registry) -> Client:
    return Client(http, await new_tenant(registry, "g"))


@pytest_asyncio.fixture(loop_scope="session")
async def other_client(http: Http, registry: Registry) -> Client:
    return Client(http, await new_tenant(registry, "h"))


# The console's browser fixtures (a gateway and a Chromium per module, a context per test).
from tests.integration.gateway.browser import (  # noqa: E402
    browser,
    chromium,
    console,
    screenshots,
    visit,
)

__all__ = ["browser", "chromium", "console", "screenshots", "visit"]
