"""A real gateway (in this process) in front of the session's real registry, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import msgspec
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from flowmesh_gateway.main import GatewayApp, start_gateway
from flowmesh_gateway.settings import GatewaySettings
from tests.integration.harness import Registry, TenantHandle, new_tenant, simple_definition

ADMIN_TOKEN = "test-platform-admin-token"
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
        "log_level": "warning",
    }
    values.update(overrides)
    return GatewaySettings(**values)


async def started(settings: GatewaySettings, stack: AsyncExitStack) -> GatewayApp:
    return await start_gateway(settings, stack)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def http(registry: Registry, jwt_keys: tuple[Keys, list[str]]) -> AsyncIterator[Http]:
    keys, files = jwt_keys
    async with AsyncExitStack() as stack:
        gateway = await started(gateway_settings(registry, files), stack)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        yield Http(session, f"http://127.0.0.1:{gateway.port}", keys)


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
