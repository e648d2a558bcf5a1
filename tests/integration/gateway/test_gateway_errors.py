"""problem+json everywhere: unknown routes, methods, sizes, types, JSON, limits, outages."""

from __future__ import annotations

import io
from contextlib import AsyncExitStack

import aiohttp
import pytest

from flowmesh_gateway.openapi import committed_path, render
from flowmesh_gateway.routes import ROUTES
from tests.integration.harness import Registry, simple_definition, unique

from .conftest import ADMIN_TOKEN, Client, Http, gateway_settings, started

pytestmark = pytest.mark.integration


def _is_problem(status: int, body: object, headers: object, code: str) -> None:
    assert isinstance(body, dict), body
    assert body["code"] == code and body["status"] == status
    assert headers["Content-Type"].startswith("application/problem+json")  # type: ignore[index]
    assert "Traceback" not in str(body)


async def test_unknown_route_and_wrong_method(client: Client) -> None:
    status, body, headers = await client.http.request("GET", "/no/such/thing")
    assert status == 404
    _is_problem(status, body, headers, "NOT_FOUND")
    status, body, headers = await client("PATCH", "/workflows")
    assert status == 405
    _is_problem(status, body, headers, "METHOD_NOT_ALLOWED")
    assert "GET" in headers["Allow"]


async def test_body_limits_types_and_json(client: Client) -> None:
    big = b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    cases = [
        (big, "application/json", 413, "PAYLOAD_TOO_LARGE"),
        (b"{}", "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b"name: x", "application/yaml", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b"{not json", "application/json", 400, "BAD_REQUEST"),
        (b'{"name": "\xff\xfe"}', "application/json", 400, "BAD_REQUEST"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "BAD_REQUEST"),
    ]
    for data, content_type, expected, code in cases:
        status, body, headers = await client(
            "POST", "/workflows", data=io.BytesIO(data), headers={"Content-Type": content_type}
        )
        assert status == expected, (content_type, body)
        _is_problem(status, body, headers, code)


async def test_deep_but_parseable_json_is_a_clear_422(client: Client) -> None:
    deep: object = "leaf"
    for _ in range(200):
        deep = {"a": deep}
    definition = simple_definition(unique("deep"), vars={"deep": deep})
    status, body, headers = await client("POST", "/workflows", json=definition)
    assert status == 422
    _is_problem(status, body, headers, body["code"])


async def test_request_id_in_and_out(client: Client) -> None:
    _, _, headers = await client("GET", "/workflows", headers={"X-Request-Id": "abc-123"})
    assert headers["X-Request-Id"] == "abc-123"
    _, body, headers = await client("GET", "/nope/x", headers={"X-Request-Id": "bad id<>"})
    assert headers["X-Request-Id"] != "bad id<>" and body["request_id"] == headers["X-Request-Id"]


async def test_rate_limit_meets_brute_force(
    registry: Registry, jwt_keys: tuple[object, list[str]]
) -> None:
    _, files = jwt_keys
    settings = gateway_settings(registry, files, auth_failure_rate=0.5, auth_failure_burst=5)
    async with AsyncExitStack() as stack:
        gateway = await started(settings, stack)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        statuses = []
        for i in range(12):
            async with session.get(
                f"http://127.0.0.1:{gateway.port}/api/v1/acme/workflows",
                headers={"Authorization": f"Bearer fm_acme_{'x' * 40}{i}"},
            ) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    assert int(resp.headers["Retry-After"]) >= 1
                    assert (await resp.json())["code"] == "RATE_LIMITED"
        assert statuses[:5] == [401] * 5 and statuses[-1] == 429


async def test_tenant_rate_limit(
    registry: Registry, jwt_keys: tuple[object, list[str]], client: Client
) -> None:
    _, files = jwt_keys
    settings = gateway_settings(registry, files, tenant_rate=1.0, tenant_burst=3)
    async with AsyncExitStack() as stack:
        gateway = await started(settings, stack)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        statuses = []
        for _ in range(6):
            async with session.get(
                f"http://127.0.0.1:{gateway.port}{client.prefix}/workflows",
                headers={"Authorization": f"Bearer {client.tenant.admin_key}"},
            ) as resp:
                statuses.append(resp.status)
        assert statuses[:3] == [200] * 3 and 429 in statuses


async def test_registry_down_is_503_quickly(
    registry: Registry, jwt_keys: tuple[object, list[str]]
) -> None:
    _, files = jwt_keys
    settings = gateway_settings(registry, files, subject_prefix="fmnobody", rpc_timeout=0.5)
    async with AsyncExitStack() as stack:
        gateway = await started(settings, stack)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        async with session.get(
            f"http://127.0.0.1:{gateway.port}/api/v1/acme/workflows",
            headers={"Authorization": f"Bearer fm_acme_{'x' * 43}"},
            timeout=aiohttp.ClientTimeout(total=5),
        ) as resp:
            assert resp.status == 503
            assert (await resp.json())["code"] == "UNAVAILABLE"


async def test_health_and_metrics(http: Http) -> None:
    status, body, _ = await http.request("GET", "/healthz")
    assert status == 200
    status, body, _ = await http.request("GET", "/readyz")
    assert status == 200 and body["checks"]["nats"] == "ok"
    async with http.session.get(http.url("/metrics")) as resp:
        text = await resp.text()
    assert "flowmesh_http_request_duration_seconds" in text


async def test_openapi_matches_routes_and_committed_file(http: Http) -> None:
    status, document, _ = await http.request("GET", "/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    assert committed_path().read_text() == render(ROUTES), "run `make openapi`"
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    served = {(route.method, route.path) for route in ROUTES} | {
        ("GET", p) for p in ("/healthz", "/readyz", "/metrics", "/openapi.json")
    }
    assert documented == served


async def test_a_tenant_limit_set_by_the_platform_admin(
    registry: Registry, jwt_keys: tuple[object, list[str]], client: Client
) -> None:
    _, files = jwt_keys
    settings = gateway_settings(registry, files, tenant_limit_cache_seconds=0.05)
    async with AsyncExitStack() as stack:
        gateway = await started(settings, stack)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        base = f"http://127.0.0.1:{gateway.port}"
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        tenant_url = f"{base}/api/v1/admin/tenants/{client.tenant.id}"
        async with session.patch(
            tenant_url, json={"rate_limit": {"rate": 0.5, "burst": 2}}, headers=admin
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["rate_limit"] == {"rate": 0.5, "burst": 2}
        statuses = []
        for _ in range(4):
            async with session.get(
                f"{base}{client.prefix}/workflows",
                headers={"Authorization": f"Bearer {client.tenant.admin_key}"},
            ) as resp:
                statuses.append(resp.status)
        assert statuses[:2] == [200, 200] and statuses[-1] == 429
        async with session.patch(tenant_url, json={"rate_limit": None}, headers=admin) as resp:
            assert (await resp.json())["rate_limit"] is None
        async with session.patch(
            tenant_url, json={"rate_limit": {"rate": -1, "burst": 2}}, headers=admin
        ) as resp:
            assert resp.status == 422
        async with session.get(f"{base}/api/v1/admin/tenants/nobody-here", headers=admin) as resp:
            assert resp.status == 404
