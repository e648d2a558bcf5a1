"""Console sessions: the pure policy (expiry, when to write a use), the CSRF comparison,
which hosts get no ``Secure`` cookie, and :class:`Sessions` over the in-memory store."""

from __future__ import annotations

from unittest.mock import patch

import msgspec
import pytest
from aiohttp.test_utils import make_mocked_request

from flowmesh_gateway.console import client_address, tenant_named_by
from flowmesh_gateway.session_store import MemorySessionStore, Sessions
from flowmesh_gateway.sessions import (
    Session,
    SessionPolicy,
    Verdict,
    csrf_holds,
    host_is_local,
    session_digest,
)

POLICY = SessionPolicy(idle=1800, lifetime=12 * 3600)
T0 = 1_800_000_000.0


def session(created: float = T0, seen: float = T0) -> Session:
    return Session(
        tenant="acme",
        key_id="k",
        role="viewer",
        csrf_token="c" * 43,
        created_at=created,
        seen_at=seen,
    )


@pytest.mark.parametrize(
    ("now", "verdict"),
    [
        (T0, Verdict.LIVE),
        (T0 + 59.9, Verdict.LIVE),
        (T0 + 60, Verdict.TOUCH),  # written at most once a minute
        (T0 + 1799.9, Verdict.TOUCH),
        (T0 + 1800, Verdict.EXPIRED),  # idle
    ],
)
def test_idle_expiry_and_touches(now: float, verdict: Verdict) -> None:
    assert POLICY.judge(session(), now) is verdict


def test_the_lifetime_bounds_even_a_busy_session() -> None:
    busy = session(created=T0, seen=T0 + 12 * 3600 - 1)
    assert POLICY.judge(busy, T0 + 12 * 3600 - 0.5) is Verdict.LIVE
    assert POLICY.judge(busy, T0 + 12 * 3600) is Verdict.EXPIRED
    assert POLICY.expires_in(busy, T0 + 12 * 3600 - 10) == 10


def test_a_short_idle_time_is_touched_at_half_of_it() -> None:
    short = SessionPolicy(idle=2, lifetime=100)
    assert short.touch_every == 1
    assert short.judge(session(), T0 + 0.9) is Verdict.LIVE
    assert short.judge(session(), T0 + 1) is Verdict.TOUCH
    assert short.expires_in(session(), T0 + 0.5) == 2  # rounded


def test_csrf_tokens_compare_exactly() -> None:
    s = session()
    assert csrf_holds(s, "c" * 43)
    for given in (None, "", "c" * 42, "c" * 44, "C" * 43, "c" * 43 + " ", "c" * 5000):
        assert not csrf_holds(s, given), given


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("LOCALHOST:8080", True),
        ("127.0.0.1:8080", True),
        ("[::1]:8080", True),
        ("[::1]", True),
        ("::1", True),
        ("example.com", False),
        ("localhost.example.com", False),
        ("127.0.0.2", False),
        ("[::2]:80", False),
        ("", False),
    ],
)
def test_which_hosts_get_no_secure_cookie(host: str, local: bool) -> None:
    assert host_is_local(host) is local


@pytest.mark.parametrize(
    ("key", "tenant"),
    [
        ("fm_acme_" + "x" * 43, "acme"),
        ("fm_acme_x_y", "acme"),
        ("fm_" + "x" * 43, None),
        ("fm_a.>_" + "x" * 43, None),
        ("acme_" + "x" * 43, None),
        ("fm_acme_" + "x" * 300, None),
        ("", None),
    ],
)
def test_the_tenant_a_key_names(key: str, tenant: str | None) -> None:
    assert tenant_named_by(key) == tenant


async def test_sessions_are_kept_by_digest_touched_expired_and_revoked() -> None:
    store = MemorySessionStore()
    sessions = Sessions(store, SessionPolicy(idle=10, lifetime=100))
    session_id, created = await sessions.create("acme", "k", "admin", T0)
    other_id, _ = await sessions.create("acme", "k", "admin", T0)
    assert session_id != other_id and len(session_id) >= 43
    assert created.csrf_token not in (session_id, other_id) and len(created.csrf_token) >= 43
    raw = await store.get(session_digest(session_id))
    assert raw is not None and session_id.encode() not in raw
    assert msgspec.json.decode(raw, type=Session) == created

    assert await sessions.find(session_id, T0 + 1) == created  # not written again
    assert await store.get(session_digest(session_id)) == raw
    touched = await sessions.find(session_id, T0 + 6)
    assert touched is not None and touched.seen_at == T0 + 6
    assert await sessions.find(session_id, T0 + 15) is not None  # idle from the touch
    assert await sessions.find(session_id, T0 + 30) is None  # idle past 10 s
    assert await store.get(session_digest(session_id)) is None  # and deleted

    assert await sessions.find(other_id, T0 + 1) is not None
    await sessions.revoke(other_id)
    assert await sessions.find(other_id, T0 + 1) is None
    for bad in ("", "x" * 43, "x" * 5000):
        assert await sessions.find(bad, T0) is None


async def test_a_stream_looking_at_its_session_does_not_keep_it_alive() -> None:
    """An open SSE stream asks now and then whether its session still holds: asking is no
    use, so a console left open on a live page still ends when idle."""
    store = MemorySessionStore()
    sessions = Sessions(store, SessionPolicy(idle=10, lifetime=100))
    session_id, created = await sessions.create("acme", "k", "admin", T0)
    assert await sessions.find(session_id, T0 + 6, use=False) == created  # due, not touched
    assert await sessions.find(session_id, T0 + 9, use=False) == created
    assert await sessions.find(session_id, T0 + 11, use=False) is None  # idle since T0


@pytest.mark.parametrize(
    ("forwarded", "trusted", "address"),
    [
        ("6.6.6.6, 10.0.0.7", True, "10.0.0.7"),  # the client wrote 6.6.6.6; the proxy added
        ("10.0.0.7", True, "10.0.0.7"),
        (" 6.6.6.6 ,", True, "unknown"),
        ("6.6.6.6, 10.0.0.7", False, "127.0.0.1"),
    ],
)
def test_the_client_address_is_the_one_the_trusted_proxy_added(
    forwarded: str, trusted: bool, address: str
) -> None:
    """With a proxy that appends (nginx's $proxy_add_x_forwarded_for), the first entry is
    the client's own word: taking it let one client sign in from any number of addresses."""
    request = make_mocked_request(
        "POST", "/console/session", headers={"X-Forwarded-For": forwarded}
    )
    with patch.object(type(request), "remote", "127.0.0.1"):
        assert client_address(request, trusted) == address
