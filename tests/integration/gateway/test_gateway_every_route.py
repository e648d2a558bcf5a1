"""Checks derived from the route table, so no endpoint escapes them."""

from __future__ import annotations

import asyncio

import pytest

from flowmesh_gateway.api import CONSOLE, PLATFORM, SIGNATURE, Route
from flowmesh_gateway.auth import ROLE_RANK
from flowmesh_gateway.routes import ROUTES
from flowmesh_proto.registry import ROLES

from .conftest import Client, Http

pytestmark = pytest.mark.integration

TENANT_ROUTES = [route for route in ROUTES if route.role not in (PLATFORM, SIGNATURE, CONSOLE)]
ABOVE_VIEWER = [route for route in TENANT_ROUTES if ROLE_RANK[route.role] > 0]
SOME_ID = "0190f5a4-0000-7000-8000-00000000abcd"


def concrete(path: str, tenant: str) -> str:
    return (
        path.replace("{tenant}", tenant)
        .replace("{id}", SOME_ID)
        .replace("{workflow_id}", SOME_ID)
        .replace("{run_id}", SOME_ID)
        .replace("{trigger_id}", "some-trigger")
        .replace("{n}", "1")
        .replace("{version}", "1")
        .replace("{name}", "SOME_NAME")
    )


@pytest.mark.parametrize("route", ABOVE_VIEWER, ids=lambda r: f"{r.method} {r.path}")
async def test_a_role_too_low_is_refused_first(client: Client, route: Route) -> None:
    lower = ROLES[ROLE_RANK[route.role] - 1]
    token = await client.key(lower)
    status, body, _ = await client.http.request(
        route.method,
        concrete(route.path, client.tenant.id),
        token=token,
        data=b"{broken",
        headers={"Content-Type": "text/plain"},
    )
    assert status == 403 and body["code"] == "FORBIDDEN", (lower, body)


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_another_tenants_path_is_refused_first(
    client: Client, other_client: Client, route: Route
) -> None:
    status, body, _ = await client.http.request(
        route.method,
        concrete(route.path, other_client.tenant.id),
        token=client.tenant.admin_key,
        data=b"{broken",
        headers={"Content-Type": "text/plain"},
    )
    assert status == 403 and body["code"] == "TENANT_MISMATCH"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_no_credentials_is_401_first(client: Client, route: Route) -> None:
    """A signature route's credential is its signature: none is INVALID_SIGNATURE."""
    status, body, _ = await client.http.request(
        route.method,
        concrete(route.path, client.tenant.id),
        data=b"{broken",
        headers={"Content-Type": "text/plain"},
    )
    expected = "INVALID_SIGNATURE" if route.role == SIGNATURE else "UNAUTHENTICATED"
    assert status == 401 and body["code"] == expected


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.role == SIGNATURE], ids=lambda r: f"{r.method} {r.path}"
)
async def test_a_signature_route_ignores_bearer_credentials(
    client: Client, other_client: Client, route: Route
) -> None:
    """A bearer token, even an admin's of the path's own tenant, opens no signature route;
    a signature route judges no tenant, role, resource or body before the signature."""
    for tenant, token in (
        (client.tenant.id, client.tenant.admin_key),
        (other_client.tenant.id, client.tenant.admin_key),
    ):
        status, body, _ = await client.http.request(
            route.method,
            concrete(route.path, tenant),
            token=token,
            data=b"{broken",
            headers={"Content-Type": "text/plain"},
        )
        assert status == 401 and body["code"] == "INVALID_SIGNATURE", body


async def _raw(http: Http, request: bytes) -> bytes:
    host, port = http.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_header_injection_is_not_reflected(client: Client) -> None:
    injected = (
        f"GET {client.prefix}/workflows HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {client.tenant.admin_key}\r\n"
        "X-Request-Id: abc%0d%0aSet-Cookie:%20evil=1\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = await _raw(client.http, injected)
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 200") and b"set-cookie" not in head
    assert b"abc%0d%0a" not in head
    bare_cr = (
        f"GET {client.prefix}/workflows HTTP/1.1\r\nHost: x\r\n"
        "X-Request-Id: abc\rSet-Cookie: evil=1\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = await _raw(client.http, bare_cr)
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert answer.split(b" ", 2)[1] == b"400" and b"set-cookie" not in head
