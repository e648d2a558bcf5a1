"""An http node's connector path (DESIGN section 16): the path rule, joining, the check of
the joined URL, and the validator's problems at their paths."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmesh_proto.connector_paths import destination_problem, join, path_problem
from flowmesh_proto.errors import ErrorCode
from flowmesh_registry.validate import validate_definition

BASE = "https://api.example.com/v2"
HOSTS = ["api.example.com"]

TRICKS = [
    "//evil.example/x",
    "@evil.example/x",
    "http://evil.example/x",
    "https:evil.example",
    "evil.example/x",
    "",
    "/a\\..\\..\\x",
    "\\\\evil.example",
    "/%2f%2fevil.example",
    "/%2F",
    "/%2e%2e/admin",
    "/%2E%2E/admin",
    "/.%2e/admin",
    "/%5c%5cevil",
    "/%40evil.example",
    "/%252e%252e/admin",
    "/../admin",
    "/a/../../admin",
    "/./x",
    "/x/..",
    "/x#frag",
    "/x y",
    "/x\n",
    "/x%zz",
    "/x%2",
]

FINE = [
    "/",
    "/chat.postMessage",
    "/repos/acme/app/issues",
    "/users/@me",
    "/a..b/.well-known/x",
    "/search?q=a/../b&redirect=http://x.example",
    "/files/%20name",
]


@pytest.mark.parametrize("path", TRICKS)
def test_each_trick_is_refused(path: str) -> None:
    assert path_problem(path) is not None


@pytest.mark.parametrize("path", FINE)
def test_plain_relative_paths_pass_and_stay_on_the_connector(path: str) -> None:
    assert path_problem(path) is None
    assert destination_problem(join(BASE, path), BASE, HOSTS) is None


def test_joining_drops_one_trailing_slash_of_the_base() -> None:
    assert join("https://slack.com/api/", "/chat.postMessage") == (
        "https://slack.com/api/chat.postMessage"
    )
    assert join("https://slack.com", "/api") == "https://slack.com/api"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://api.example.com/v2/x", "scheme"),
        ("https://evil.example/v2/x", "host"),
        ("https://api.example.com:8443/v2/x", "port"),
        ("https://api.example.com/v3/x", "path"),
        ("https://api.example.com/v2x", "path"),
        ("https://api.example.com/v2/../admin", "segments"),
        ("https://u:p@api.example.com/v2/x", "user info"),
    ],
)
def test_a_joined_url_off_the_connector_is_refused(url: str, why: str) -> None:
    problem = destination_problem(url, BASE, HOSTS)
    assert problem is not None and why in problem


def test_a_listed_host_is_allowed() -> None:
    url = "https://login.example.com/v2/token"
    assert destination_problem(url, BASE, [*HOSTS, "login.example.com"]) is None


@given(st.text(alphabet=st.sampled_from(list("/.%2eEfF5cC40@\\:?#ax")), max_size=16))
def test_whatever_passes_the_rule_stays_on_the_host_and_under_the_path(tail: str) -> None:
    path = "/" + tail
    if path_problem(path) is not None:
        return
    joined = urlsplit(join(BASE, path))
    assert joined.hostname == "api.example.com"
    assert joined.port is None
    assert joined.path == "/v2" or joined.path.startswith("/v2/")
    assert destination_problem(join(BASE, path), BASE, HOSTS) is None


# --- the validator --------------------------------------------------------------------------


def http(**parameters: Any) -> dict[str, Any]:
    return {"name": "wf", "nodes": [{"id": "call", "type": "http", "parameters": parameters}]}


def problems(
    doc: dict[str, Any], known: frozenset[str] | None = frozenset({"slack"})
) -> set[tuple[str, str]]:
    report = validate_definition(doc, known_secrets=frozenset({"TOKEN"}), known_connectors=known)
    return {(p.path, p.code) for p in report.problems}


P = "nodes[0].parameters"
INVALID = ErrorCode.INVALID_NODES.name


def test_a_connector_and_path_validate() -> None:
    assert problems(http(connector="slack", path="/chat.postMessage")) == set()
    assert problems(http(connector="slack", path="/x/{{ secrets.TOKEN }}")) == set()
    assert problems(http(connector="slack", path="/users/{{ vars.who }}", method="GET")) <= {
        (f"{P}.path", ErrorCode.MISSING_VARIABLE.name)
    }


def test_an_unknown_connector_is_missing_at_its_path() -> None:
    assert problems(http(connector="nope", path="/")) == {
        (f"{P}.connector", ErrorCode.MISSING_VARIABLE.name)
    }
    assert problems(http(connector="nope", path="/"), known=None) == set()


def test_exactly_one_of_url_or_connector_and_path() -> None:
    assert (f"{P}.url", INVALID) in problems(http())
    both = http(url="https://a.example/", connector="slack", path="/")
    assert (f"{P}.url", INVALID) in problems(both)
    assert (f"{P}.path", INVALID) in problems(http(connector="slack"))
    assert (f"{P}.path", INVALID) in problems(http(path="/x"))
    assert (f"{P}.connector", INVALID) in problems(http(connector="Bad Name", path="/"))


@pytest.mark.parametrize("path", TRICKS)
def test_the_validator_refuses_each_trick_at_the_path(path: str) -> None:
    assert (f"{P}.path", INVALID) in problems(http(connector="slack", path=path))


def test_templates_are_read_as_plain_text_and_checked_again_at_run_time() -> None:
    assert (f"{P}.path", INVALID) in problems(http(connector="slack", path="{{ '//evil' }}"))
    assert problems(http(connector="slack", path="/{{ 'a' }}/b")) == set()


def test_a_map_template_names_a_known_connector() -> None:
    doc = {
        "name": "wf",
        "nodes": [
            {
                "id": "each",
                "type": "map",
                "parameters": {
                    "items": "[1, 2]",
                    "node": {"type": "http", "parameters": {"connector": "gone", "path": "/"}},
                },
            }
        ],
    }
    assert (f"{P}.node.parameters.connector", ErrorCode.MISSING_VARIABLE.name) in problems(doc)
