"""Console sessions (DESIGN section 14): sign in with a key, then the cookie stands for it,
with its CSRF token on changes, idle expiry and sign-out; two replicas share sessions."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import msgspec
import pytest
import pytest_asyncio
import structlog
from nats.aio.client import Client as Nats

from flowmesh_gateway.session_store import KvSessionStore, MemorySessionStore, SessionStore
from flowmesh_shared.jetstream import StreamLimits, ensure_bucket
from tests.helpers import until
from tests.integration.harness import Registry, new_tenant, simple_definition, unique

from .conftest import Client, Http, Keys, gateway_settings, started

pytestmark = pytest.mark.integration


class Gateways(msgspec.Struct, frozen=True, kw_only=True):
    main: Http  # sign-ins plentiful, the default idle time
    other: Http  # another replica, with the same settings
    strict: Http  # a 1.5 s idle time and 3 sign-ins per address


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateways(registry: Registry, jwt_keys: tuple[Keys, list[str]]) -> AsyncIterator[Gateways]:
    keys, files = jwt_keys
    plenty = {"console_sign_in_rate": 1000.0, "console_sign_in_burst": 1000}
    strict = {
        "console_sign_in_rate": 0.01,
        "console_sign_in_burst": 3,
        "console_idle_seconds": 1.5,
    }
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        )
        https = []
        for overrides in (plenty, plenty, strict):
            gateway = await started(gateway_settings(registry, files, **overrides), stack)
            https.append(Http(session, f"http://127.0.0.1:{gateway.port}", keys))
        yield Gateways(main=https[0], other=https[1], strict=https[2])


async def sign_in(http: Http, key: Any, **headers: str) -> tuple[int, Any, Any]:
    return await http.request("POST", "/console/session", json={"key": key}, headers=headers)


def cookie_of(headers: Any) -> str:
    jar = SimpleCookie()
    jar.load(headers["Set-Cookie"])
    return jar["fm_session"].value


async def as_session(
    http: Http, method: str, path: str, cookie: str, csrf: str | None = None, **kw: Any
) -> tuple[int, Any, Any]:
    headers = {"Cookie": f"fm_session={cookie}", **kw.pop("headers", {})}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return await http.request(method, path, headers=headers, **kw)


async def signed_in(http: Http, key: str) -> tuple[str, dict[str, Any]]:
    status, body, headers = await sign_in(http, key)
    assert status == 201, body
    return cookie_of(headers), body


async def test_sign_in_then_the_cookie_reads_and_changes_with_its_csrf_token(
    gateways: Gateways, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "cs")
    http, base = gateways.main, f"/api/v1/{tenant.id}"
    status, body, headers = await sign_in(http, tenant.admin_key)
    assert status == 201, body
    assert body["tenant"] == tenant.id and body["role"] == "admin"
    assert body["expires_in"] == 1800 and len(body["csrf_token"]) >= 32
    assert headers["Cache-Control"] == "no-store"
    cookie = cookie_of(headers)
    assert cookie not in str(body) and tenant.admin_key not in str(body)

    status, page, _ = await as_session(http, "GET", f"{base}/workflows", cookie)
    assert status == 200 and page["items"] == []
    definition = simple_definition(unique("console"))
    status, problem, _ = await as_session(
        http, "POST", f"{base}/workflows", cookie, json=definition
    )
    assert status == 403 and problem["code"] == "CSRF_TOKEN_INVALID"
    status, problem, _ = await as_session(
        http, "POST", f"{base}/workflows", cookie, csrf="x" * 43, json=definition
    )
    assert status == 403 and problem["code"] == "CSRF_TOKEN_INVALID"
    status, created, _ = await as_session(
        http, "POST", f"{base}/workflows", cookie, csrf=body["csrf_token"], json=definition
    )
    assert status == 201, created
    assert created["created_by"] == f"key:{tenant.id}:{tenant.admin_key_id}"

    status, me, _ = await as_session(http, "GET", "/console/session", cookie)
    assert status == 200 and me == {**body, "expires_in": me["expires_in"]}
    # Another replica knows the session.
    status, page, _ = await as_session(gateways.other, "GET", f"{base}/workflows", cookie)
    assert status == 200 and [w["id"] for w in page["items"]] == [created["id"]]


async def test_a_bearer_header_wins_over_the_cookie(gateways: Gateways, registry: Registry) -> None:
    tenant = await new_tenant(registry, "cs")
    cookie, _ = await signed_in(gateways.main, tenant.admin_key)
    status, _, _ = await as_session(
        gateways.main,
        "GET",
        f"/api/v1/{tenant.id}/workflows",
        cookie,
        headers={"Authorization": "Bearer fm_nobody_" + "x" * 43},
    )
    assert status == 401


async def test_a_viewers_session_keeps_the_viewer_role(
    gateways: Gateways, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "cs")
    viewer_key = await Client(gateways.main, tenant).key("viewer")
    cookie, body = await signed_in(gateways.main, viewer_key)
    assert body["role"] == "viewer"
    base = f"/api/v1/{tenant.id}"
    assert (await as_session(gateways.main, "GET", f"{base}/workflows", cookie))[0] == 200
    status, problem, _ = await as_session(
        gateways.main,
        "POST",
        f"{base}/workflows",
        cookie,
        csrf=body["csrf_token"],
        json=simple_definition(unique("nope")),
    )
    assert status == 403 and problem["code"] == "FORBIDDEN"


async def test_another_tenants_resources_are_not_found_through_a_session(
    gateways: Gateways, registry: Registry
) -> None:
    mine, theirs = await new_tenant(registry, "cs"), await new_tenant(registry, "ct")
    foreign = await Client(gateways.main, theirs).create(unique("theirs"))
    cookie, _ = await signed_in(gateways.main, mine.admin_key)
    status, problem, _ = await as_session(
        gateways.main, "GET", f"/api/v1/{mine.id}/workflows/{foreign['id']}", cookie
    )
    assert status == 404 and problem["code"] == "WORKFLOW_NOT_FOUND"
    status, problem, _ = await as_session(
        gateways.main, "GET", f"/api/v1/{theirs.id}/workflows/{foreign['id']}", cookie
    )
    assert status == 403 and problem["code"] == "TENANT_MISMATCH"


async def test_sign_out_makes_the_old_cookie_useless_on_every_replica(
    gateways: Gateways, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "cs")
    cookie, body = await signed_in(gateways.main, tenant.admin_key)
    status, problem, _ = await as_session(gateways.main, "DELETE", "/console/session", cookie)
    assert status == 403 and problem["code"] == "CSRF_TOKEN_INVALID"
    status, _, headers = await as_session(
        gateways.other, "DELETE", "/console/session", cookie, csrf=body["csrf_token"]
    )
    assert status == 204
    cleared = SimpleCookie()
    cleared.load(headers["Set-Cookie"])
    assert cleared["fm_session"].value == "" and cleared["fm_session"]["max-age"] == "0"
    for http in (gateways.main, gateways.other):
        status, problem, _ = await as_session(http, "GET", f"/api/v1/{tenant.id}/workflows", cookie)
        assert status == 401 and problem["code"] == "UNAUTHENTICATED"
        assert (await as_session(http, "GET", "/console/session", cookie))[0] == 401


async def test_a_revoked_key_ends_its_sessions(gateways: Gateways, registry: Registry) -> None:
    tenant = await new_tenant(registry, "cs")
    admin = Client(gateways.main, tenant)
    status, created, _ = await admin("POST", "/api-keys", json={"name": "v", "role": "viewer"})
    assert status == 201
    cookie, _ = await signed_in(gateways.main, created["key"])
    path = f"/api/v1/{tenant.id}/workflows"
    assert (await as_session(gateways.main, "GET", path, cookie))[0] == 200
    assert (await admin("DELETE", f"/api-keys/{created['id']}"))[0] == 204

    async def refused() -> bool:
        return (await as_session(gateways.main, "GET", path, cookie))[0] == 401

    await until(refused, timeout=5)  # the key cache's bound (1 s in these tests)


async def test_a_bad_key_is_401_whatever_was_wrong_and_audited(
    gateways: Gateways, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "cs")
    wrong = f"fm_{tenant.id}_" + "x" * 43
    answers = []
    with structlog.testing.capture_logs() as logs:
        for key in (wrong, "fm_nobody_" + "y" * 43, "not-a-key", "", tenant.admin_key + "z"):
            status, problem, headers = await sign_in(gateways.main, key)
            assert status == 401 and "Set-Cookie" not in headers
            answers.append((problem["code"], problem["detail"]))
        cookie, _ = await signed_in(gateways.main, tenant.admin_key)
    assert set(answers) == {("UNAUTHENTICATED", "the API key is not valid")}
    logged = repr(logs)
    assert wrong not in logged and tenant.admin_key not in logged and cookie not in logged
    status, audit, _ = await Client(gateways.main, tenant)("GET", "/audit?action=console.sign_in")
    assert status == 200
    outcomes = [entry["outcome"] for entry in audit["items"]]
    assert outcomes.count("denied") == 2 and outcomes.count("success") == 1, outcomes
    assert wrong not in str(audit)


async def test_the_key_is_taken_from_the_body_only(gateways: Gateways, registry: Registry) -> None:
    tenant = await new_tenant(registry, "cs")
    status, _, headers = await gateways.main.request(
        "POST", f"/console/session?key={tenant.admin_key}"
    )
    assert status != 201 and "Set-Cookie" not in headers
    for body in ({"key": tenant.admin_key, "remember": True}, [tenant.admin_key], {"key": 1}):
        status, problem, _ = await gateways.main.request("POST", "/console/session", json=body)
        assert status == 401 and problem["detail"] == "the API key is not valid"


async def test_many_sign_ins_from_one_address_are_429(
    gateways: Gateways, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "cs")
    statuses = []
    for _ in range(5):
        status, problem, headers = await sign_in(gateways.strict, f"fm_{tenant.id}_" + "q" * 43)
        statuses.append(status)
    assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]
    assert problem["code"] == "RATE_LIMITED" and int(headers["Retry-After"]) >= 1
    # The address is refused before its key is looked at: a good key too.
    assert (await sign_in(gateways.strict, tenant.admin_key))[0] == 429


async def test_an_idle_session_is_gone(gateways: Gateways, registry: Registry) -> None:
    tenant = await new_tenant(registry, "cs")
    # Signed in on a replica with plenty of sign-ins, used on the strict one (idle 1.5 s).
    cookie, _ = await signed_in(gateways.main, tenant.admin_key)
    path = f"/api/v1/{tenant.id}/workflows"
    loop = asyncio.get_running_loop()
    kept_until = loop.time() + 2.5  # past the idle time: used every 0.4 s, the session holds

    async def used_past_the_idle_time() -> bool:
        assert (await as_session(gateways.strict, "GET", path, cookie))[0] == 200
        return loop.time() >= kept_until

    await until(used_past_the_idle_time, timeout=5, interval=0.4)

    async def gone() -> bool:  # asked less often than the idle time
        return (await as_session(gateways.strict, "GET", "/console/session", cookie))[0] == 401

    await until(gone, timeout=5, interval=1.7)
    # Gone for every replica (it was deleted), not only for the one with the short idle time.
    assert (await as_session(gateways.main, "GET", path, cookie))[0] == 401


async def test_the_cookie_is_httponly_strict_and_secure_outside_localhost(
    gateways: Gateways, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "cs")
    behind_a_proxy = {"X-Forwarded-Proto": "https"}  # which passed its upstream's Host
    for host, secure, more in (
        ("console.example.com", True, {}),
        ("localhost:8080", False, {}),
        ("[::1]:8080", False, {}),
        ("127.0.0.1", False, {}),
        ("localhost.example.com", True, {}),
        ("127.0.0.1:8080", True, behind_a_proxy),
        ("localhost", True, {"X-Forwarded-For": "203.0.113.9"}),
        ("localhost", True, {"Forwarded": "for=203.0.113.9;proto=https"}),
    ):
        status, _, headers = await sign_in(gateways.main, tenant.admin_key, Host=host, **more)
        assert status == 201
        raw = headers["Set-Cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in raw.split(";")}
        assert {"httponly", "samesite", "path"} <= attributes, raw
        assert "SameSite=Strict" in raw and "Path=/" in raw
        assert ("secure" in attributes) is secure, (host, raw)


async def test_every_answer_the_console_reads_says_nosniff(
    gateways: Gateways, registry: Registry
) -> None:
    """API answers quote what a tenant wrote (a path, a workflow's YAML): none is sniffed
    into a page when opened directly."""
    tenant = await new_tenant(registry, "cs")
    http, base = gateways.main, f"/api/v1/{tenant.id}"
    created = await Client(http, tenant).create(unique("sniff"))
    cookie, _ = await signed_in(http, tenant.admin_key)
    answers = [
        await as_session(http, "GET", f"{base}/workflows", cookie),
        await as_session(
            http, "GET", f"{base}/workflows/{created['id']}/export?format=yaml", cookie
        ),
        await as_session(http, "GET", "/api/v1/<script>alert(1)</script>", cookie),
        await as_session(http, "GET", f"{base}/workflows", "not-a-session"),
        await as_session(http, "GET", "/console/session", cookie),
        await http.request("GET", "/openapi.json"),
    ]
    for status, body, headers in answers:
        assert headers.get("X-Content-Type-Options") == "nosniff", (status, body)
    assert [status for status, _, _ in answers] == [200, 200, 404, 401, 200, 200]
    assert answers[1][2]["Content-Type"].startswith("application/yaml")
    stream = f"{base}/events/stream"
    async with http.session.get(
        http.url(stream), headers={"Cookie": f"fm_session={cookie}"}
    ) as resp:
        assert resp.status == 200
        assert resp.headers.get("X-Content-Type-Options") == "nosniff"


async def _ends_within(response: aiohttp.ClientResponse, seconds: float) -> bool:
    """Whether the stream ends (EOF, or the connection dropped) within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            while await response.content.readany():
                pass
    except TimeoutError:
        return False
    except aiohttp.ClientError:
        return True
    return True


async def test_an_open_stream_ends_with_its_session_or_its_key(
    registry: Registry, jwt_keys: tuple[Keys, list[str]]
) -> None:
    """A tab left open on the runs list keeps an SSE stream of the tenant's events: signing
    out (or revoking the key) must end it, not only refuse the next request."""
    keys, files = jwt_keys
    settings = gateway_settings(registry, files, sse_heartbeat_seconds=0.3)
    async with AsyncExitStack() as stack:
        gateway = await started(settings, stack)
        session = await stack.enter_async_context(
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        )
        http = Http(session, f"http://127.0.0.1:{gateway.port}", keys)
        tenant = await new_tenant(registry, "cs")
        stream = http.url(f"/api/v1/{tenant.id}/events/stream")

        cookie, body = await signed_in(http, tenant.admin_key)
        kept_cookie, _ = await signed_in(http, tenant.admin_key)
        async with (
            session.get(stream, headers={"Cookie": f"fm_session={cookie}"}) as signed_out,
            session.get(stream, headers={"Cookie": f"fm_session={kept_cookie}"}) as kept,
        ):
            assert signed_out.status == 200 and kept.status == 200
            assert not await _ends_within(signed_out, 1.0)  # heartbeats, not an end
            status, _, _ = await as_session(
                http, "DELETE", "/console/session", cookie, csrf=body["csrf_token"]
            )
            assert status == 204
            assert await _ends_within(signed_out, 3.0)
            assert not await _ends_within(kept, 0.5)  # another session of the key goes on

            admin = Client(http, tenant)
            status, created, _ = await admin(
                "POST", "/api-keys", json={"name": "v", "role": "viewer"}
            )
            assert status == 201
            auth = {"Authorization": f"Bearer {created['key']}"}
            async with session.get(stream, headers=auth) as bearer:
                assert bearer.status == 200
                assert not await _ends_within(bearer, 0.8)
                assert (await admin("DELETE", f"/api-keys/{created['id']}"))[0] == 204
                assert await _ends_within(bearer, 4.0)  # within the key cache's 1 s
            assert not await _ends_within(kept, 0.5)


async def test_sessions_of_one_key_share_its_limit_of_open_streams(
    registry: Registry, jwt_keys: tuple[Keys, list[str]]
) -> None:
    """The console opens a stream per run page and one per runs list: signing in again (a
    new cookie) or using the key as a bearer as well never makes more than the key's holds."""
    keys, files = jwt_keys
    settings = gateway_settings(registry, files, credential_max_holds=2)
    async with AsyncExitStack() as stack:
        gateway = await started(settings, stack)
        session = await stack.enter_async_context(
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        )
        http = Http(session, f"http://127.0.0.1:{gateway.port}", keys)
        tenant = await new_tenant(registry, "cs")
        stream = http.url(f"/api/v1/{tenant.id}/events/stream")
        first, _ = await signed_in(http, tenant.admin_key)
        second, _ = await signed_in(http, tenant.admin_key)
        as_cookie = [{"Cookie": f"fm_session={c}"} for c in (first, second)]
        bearer = {"Authorization": f"Bearer {tenant.admin_key}"}
        async with (
            session.get(stream, headers=as_cookie[0]) as one,
            session.get(stream, headers=as_cookie[1]) as two,
        ):
            assert one.status == 200 and two.status == 200
            for headers in (as_cookie[0], as_cookie[1], bearer):
                async with session.get(stream, headers=headers) as third:
                    assert third.status == 429, headers
                    assert (await third.json())["code"] == "RATE_LIMITED"
            other_key = await Client(http, tenant).key("viewer")  # another key: its own holds
            async with session.get(stream, headers={"Authorization": f"Bearer {other_key}"}) as own:
                assert own.status == 200


@pytest.mark.parametrize("kind", ["memory", "jetstream"])
async def test_the_stores_behave_the_same(kind: str, nc: Nats) -> None:
    bucket = f"TEST_SESSIONS_{secrets.token_hex(4).upper()}"
    store: SessionStore
    if kind == "memory":
        store = MemorySessionStore()
    else:
        kv = await ensure_bucket(nc.jetstream(), bucket, timedelta(minutes=5), StreamLimits())
        store = KvSessionStore(kv)
    try:
        assert await store.get("a" * 64) is None
        await store.put("a" * 64, b'{"x":1}')
        await store.put("b" * 64, b'{"y":2}')
        assert await store.get("a" * 64) == b'{"x":1}'
        await store.put("a" * 64, b'{"x":3}')
        assert await store.get("a" * 64) == b'{"x":3}'
        await store.delete("a" * 64)
        await store.delete("c" * 64)  # deleting a missing one is no error
        assert await store.get("a" * 64) is None
        assert await store.get("b" * 64) == b'{"y":2}'
    finally:
        if kind == "jetstream":
            await nc.jetstream().delete_key_value(bucket)
