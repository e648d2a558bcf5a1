"""Authentication, tenants and roles: keys, JWTs, the admin token; each boundary audited."""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest

from tests.helpers import until
from tests.integration.harness import simple_definition, unique

from .conftest import ADMIN_TOKEN, Client, Http

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer fm_nobody_" + "x" * 43,
        "Bearer a.b.c",
        "Bearer " + "x" * 8100,
        "Bearer not-a-token",
    ],
)
async def test_bad_credentials_are_401(client: Client, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    status, body, resp_headers = await client.http.request(
        "GET", f"{client.prefix}/workflows", headers=headers
    )
    assert status == 401 and body["code"] == "UNAUTHENTICATED"
    assert resp_headers["Content-Type"].startswith("application/problem+json")


async def test_revoked_key_stops_within_seconds(client: Client) -> None:
    status, created, _ = await client("POST", "/api-keys", json={"name": "temp", "role": "viewer"})
    assert status == 201 and created["key"].startswith("fm_")
    key = created["key"]
    assert (await client("GET", "/workflows", token=key))[0] == 200
    status, listing, _ = await client("GET", "/api-keys")
    assert all("key" not in item for item in listing["items"])
    assert (await client("DELETE", f"/api-keys/{created['id']}"))[0] == 204

    async def refused() -> bool:
        return (await client("GET", "/workflows", token=key))[0] == 401

    await until(refused, timeout=5)


async def test_jwts(client: Client) -> None:
    http, tenant = client.http, client.tenant.id
    for alg in ("HS256", "RS256", "ES256"):
        status, _, _ = await client(
            "GET", "/workflows", token=http.jwt(tenant, ["viewer"], alg=alg)
        )
        assert status == 200, alg
    bad_tokens = {
        "expired": http.jwt(tenant, ["admin"], exp=time.time() - 3600),
        "no exp": http.jwt(tenant, ["admin"], exp=None),
        "forged": http.jwt(tenant, ["admin"])[:-4] + "AAAA",
        "alg none": pyjwt.encode(
            {"tenant": tenant, "sub": "x", "roles": ["admin"], "exp": time.time() + 60},
            None,
            algorithm="none",
        ),
        "wrong secret": pyjwt.encode(
            {"tenant": tenant, "sub": "x", "roles": ["admin"], "exp": time.time() + 60},
            "another-secret-of-sufficient-length-123",
            algorithm="HS256",
        ),
        "confusion": _confused(http, tenant),
        "no roles": http.jwt(tenant, []),
        "unknown role": http.jwt(tenant, ["god"]),
        "bad tenant": http.jwt("a.>", ["admin"]),
    }
    for why, token in bad_tokens.items():
        status, body, _ = await client("GET", "/workflows", token=token)
        assert status == 401, why
        assert body["code"] == "UNAUTHENTICATED", why


def _confused(http: Http, tenant: str) -> str:
    """HS256 signed with the RSA public key's PEM: the classic algorithm-confusion attack."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(
        json.dumps(
            {"tenant": tenant, "sub": "x", "roles": ["admin"], "exp": time.time() + 60}
        ).encode()
    )
    signature = hmac.new(http.keys.rsa_public_pem, f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{b64(signature.digest())}"


async def test_tenant_mismatch_is_403_and_audited(client: Client, other_client: Client) -> None:
    status, body, _ = await client.http.request(
        "GET", f"{other_client.prefix}/workflows", token=client.tenant.admin_key
    )
    assert status == 403 and body["code"] == "TENANT_MISMATCH" and body["code_num"] == 4034
    status, audit, _ = await client("GET", "/audit?action=http.workflow_list")
    assert status == 200
    assert audit["items"] and audit["items"][0]["outcome"] == "denied"
    assert audit["items"][0]["target"] == f"tenant:{other_client.tenant.id}"


async def test_foreign_resource_under_own_tenant_is_404(
    client: Client, other_client: Client
) -> None:
    theirs = await other_client.create(unique("theirs"))
    status, body, _ = await client("GET", f"/workflows/{theirs['id']}")
    assert status == 404 and body["code"] == "WORKFLOW_NOT_FOUND"
    status, body, _ = await client("DELETE", f"/workflows/{theirs['id']}")
    assert status == 404


ROLE_CASES = [
    ("viewer", "GET", "/workflows", 200),
    ("viewer", "POST", "/workflows", 403),
    ("viewer", "POST", "/workflows/validate", 200),
    ("operator", "POST", "/workflows", 403),
    ("editor", "POST", "/workflows", 201),
    ("editor", "DELETE", "/workflows/{id}", 403),
    ("editor", "GET", "/api-keys", 403),
    ("editor", "GET", "/audit", 403),
    ("admin", "DELETE", "/workflows/{id}", 204),
    ("admin", "GET", "/audit", 200),
]


@pytest.mark.parametrize(("role", "method", "path", "expected"), ROLE_CASES)
async def test_role_boundaries(
    client: Client, role: str, method: str, path: str, expected: int
) -> None:
    token = await client.key(role)
    wf = await client.create(unique("roles"))
    body = simple_definition(unique("by-role")) if method == "POST" else None
    status, answer, _ = await client(method, path.format(id=wf["id"]), token=token, json=body)
    assert status == expected, answer
    if expected == 403:
        assert answer["code"] == "FORBIDDEN"
        status, audit, _ = await client("GET", "/audit?limit=5")
        assert any(
            e["outcome"] == "denied" and e["detail"]["reason"] == "FORBIDDEN"
            for e in audit["items"]
        )


async def test_role_is_judged_before_the_resource_and_body(client: Client) -> None:
    viewer = await client.key("viewer")
    status, body, _ = await client(
        "PUT",
        "/workflows/00000000-0000-0000-0000-000000000000",
        token=viewer,
        data=b"{not json",
        headers={"Content-Type": "text/plain"},
    )
    assert status == 403 and body["code"] == "FORBIDDEN"


async def test_admin_tenants(http: Http, client: Client) -> None:
    tenant_id = unique("made").lower()
    status, body, _ = await http.request(
        "POST", "/api/v1/admin/tenants", token=ADMIN_TOKEN, json={"id": tenant_id, "name": "Made"}
    )
    assert status == 201
    assert set(body) == {"id", "name", "created_at", "admin_key"}
    assert (
        set(body["admin_key"]) >= {"id", "name", "role", "key"}
        and body["admin_key"]["role"] == "admin"
    )
    status, _, _ = await http.request(
        "GET", f"/api/v1/{tenant_id}/workflows", token=body["admin_key"]["key"]
    )
    assert status == 200
    for token in (client.tenant.admin_key, "wrong", None):
        status, body, _ = await http.request(
            "POST", "/api/v1/admin/tenants", token=token, json={"id": unique("x")}
        )
        assert status == 401
    status, body, _ = await http.request(
        "POST", "/api/v1/admin/tenants", token=ADMIN_TOKEN, json={"id": "a.>"}
    )
    assert status == 422
