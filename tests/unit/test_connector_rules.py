"""The pure rules of a connector spec: every bad field a problem at its path."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmesh_proto.connector_rules import connector_hosts, connector_problems
from flowmesh_proto.connectors import ConnectorSpec, secret_names


def spec(**fields: Any) -> ConnectorSpec:
    body = {"base_url": "https://api.example.com/v1", "auth": {"kind": "none"}, **fields}
    return msgspec.convert(body, ConnectorSpec)


def paths(name: str, value: ConnectorSpec) -> list[str]:
    return [p.path for p in connector_problems(name, value)]


@pytest.mark.parametrize(
    "auth",
    [
        {"kind": "none"},
        {"kind": "bearer", "secret": "API_TOKEN"},
        {"kind": "basic", "username": "bot", "password_secret": "BOT_PASSWORD"},
        {"kind": "header", "name": "X-Api-Key", "secret": "API_KEY"},
        {"kind": "header", "name": "Authorization", "secret": "RAW_AUTH"},
        {"kind": "query", "name": "api_key", "secret": "API_KEY"},
    ],
)
def test_every_auth_kind_is_fine(auth: dict[str, Any]) -> None:
    assert paths("svc", spec(auth=auth)) == []


def test_oauth2_needs_its_token_host_in_hosts() -> None:
    auth = {
        "kind": "oauth2_client_credentials",
        "token_url": "https://login.example.com/oauth/token",
        "client_id": "flowmesh",
        "client_secret": "CLIENT_SECRET",
        "scopes": ["read", "write:all"],
    }
    assert paths("svc", spec(auth=auth)) == ["auth.token_url"]
    listed = spec(auth=auth, hosts=["api.example.com", "login.example.com"])
    assert paths("svc", listed) == []
    assert secret_names(listed.auth) == ["CLIENT_SECRET"]
    bad_scope = spec(
        auth={**auth, "scopes": ["a b"]}, hosts=["api.example.com", "login.example.com"]
    )
    assert paths("svc", bad_scope) == ["auth.scopes[0]"]


def test_hosts_default_to_the_base_urls() -> None:
    assert connector_hosts(spec()) == ["api.example.com"]
    assert connector_hosts(spec(hosts=["a.example", "api.example.com"])) == [
        "a.example",
        "api.example.com",
    ]


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"base_url": "https://user:pass@api.example.com"}, "base_url"),
        ({"base_url": "https://token@api.example.com"}, "base_url"),
        ({"base_url": "https://api.example.com/v1?key=1"}, "base_url"),
        ({"base_url": "https://api.example.com/v1#top"}, "base_url"),
        ({"base_url": "ftp://api.example.com"}, "base_url"),
        ({"base_url": "/relative/path"}, "base_url"),
        ({"base_url": "https://api.example.com:99999"}, "base_url"),
        ({"base_url": "https://api.exa mple.com"}, "base_url"),
        ({"base_url": "https://api.example.com\\@evil"}, "base_url"),
        ({"base_url": "https://api.example.com/\x00"}, "base_url"),
        ({"hosts": ["other.example.com"]}, "base_url"),
        ({"hosts": ["api.example.com", "Upper.Example"]}, "hosts[1]"),
        ({"hosts": ["api.example.com", "https://x.example"]}, "hosts[1]"),
        ({"hosts": ["api.example.com", "api.example.com"]}, "hosts[1]"),
        ({"headers": {"Authorization": "Bearer abc"}}, "headers.Authorization"),
        ({"headers": {"X-Auth-Token": "abc"}}, 'headers["X-Auth-Token"]'),
        ({"headers": {"x_api_key": "abc"}}, "headers.x_api_key"),
        ({"headers": {"Cookie": "a=b"}}, "headers.Cookie"),
        ({"headers": {"Host": "evil.example"}}, "headers.Host"),
        ({"headers": {"Content-Length": "1"}}, 'headers["Content-Length"]'),
        ({"headers": {"Transfer-Encoding": "chunked"}}, 'headers["Transfer-Encoding"]'),
        ({"headers": {"Bad Name": "x"}}, 'headers["Bad Name"]'),
        ({"headers": {"X-Ok": "a\r\nInjected: 1"}}, 'headers["X-Ok"]'),
        ({"headers": {"X-Ok": "x" * 5000}}, 'headers["X-Ok"]'),
        ({"auth": {"kind": "header", "name": "Host", "secret": "S"}}, "auth.name"),
        ({"auth": {"kind": "header", "name": "Connection", "secret": "S"}}, "auth.name"),
        ({"auth": {"kind": "query", "name": "a&b", "secret": "S"}}, "auth.name"),
        ({"auth": {"kind": "basic", "username": "a:b", "password_secret": "S"}}, "auth.username"),
    ],
)
def test_a_bad_field_is_a_problem_at_its_path(fields: dict[str, Any], path: str) -> None:
    assert paths("svc", spec(**fields)) == [path]


def test_the_auth_header_is_not_also_a_default_header() -> None:
    value = spec(
        headers={"X-Api-Key": "nope"}, auth={"kind": "header", "name": "x-api-key", "secret": "K"}
    )
    assert "auth.name" in paths("svc", value)


def test_shapes_the_decoder_refuses_at_their_path() -> None:
    for body, where in [
        ({"base_url": "https://a.example", "auth": {"kind": "magic"}}, "$.auth.kind"),
        (
            {"base_url": "https://a.example", "auth": {"kind": "bearer", "secret": "low"}},
            "$.auth.secret",
        ),
        ({"base_url": "https://a.example", "auth": {"kind": "none"}, "extra": 1}, "`extra`"),
        ({"base_url": "https://a.example", "auth": {"kind": "none", "x": 1}}, "`x` - at `$.auth`"),
        ({"base_url": "https://a.example"}, "`auth`"),
    ]:
        with pytest.raises(msgspec.ValidationError, match=re.escape(where)):
            msgspec.convert(body, ConnectorSpec)


def test_an_oversized_spec_is_refused_whole() -> None:
    value = spec(headers={f"X-H{i}": "v" * 4000 for i in range(20)})
    assert paths("svc", value) == ["$"]


@pytest.mark.parametrize("name", ["Svc", "1svc", "", "s" * 64, "a.b", "a/b", "svc\x00"])
def test_bad_names(name: str) -> None:
    assert paths(name, spec()) == ["name"]


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_host = st.lists(_label, min_size=1, max_size=4).map(".".join)


@given(host=_host, path=st.from_regex(r"(/[A-Za-z0-9._~-]{0,8}){0,3}", fullmatch=True))
def test_any_plain_https_url_is_fine_and_its_host_in_force(host: str, path: str) -> None:
    value = spec(base_url=f"https://{host}{path}")
    assert paths("svc", value) == []
    assert connector_hosts(value) == [host]


@given(st.text(max_size=40))
def test_any_text_as_base_url_is_a_verdict_never_a_crash(text: str) -> None:
    value = spec(base_url=text or "x")
    found = paths("svc", value)
    assert set(found) <= {"base_url"}
    if "@" in text or "?" in text or "#" in text:
        assert found == ["base_url"]
