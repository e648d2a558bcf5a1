"""The pure parts of the catalog and connectors pages: a node as a line of YAML (a JSON flow
mapping), a line put at the editor's caret, a schema as readable text, and a connector's
form read into the body of its PUT."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest_asyncio
import yaml
from playwright.async_api import Page

from flowmesh_proto.entries import node_catalog
from tests.unit.console_js import call, console_modules

ENTRIES = msgspec.to_builtins(node_catalog())
TRICKY = {"text": 'quote " backslash \\ colon: hash # {{ x }}', "n": [1, 2.5, None, True], "e": {}}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page() -> AsyncIterator[Page]:
    async for found in console_modules():
        yield found


async def test_every_entrys_example_makes_a_node_line_that_yaml_reads_back(page: Page) -> None:
    lines = await call(
        page,
        "nodebuilder.js",
        "(m, entries) => entries.map((e) => m.nodeLine(e, m.defaultId(e.name), e.example))",
        ENTRIES,
    )
    for entry, line in zip(ENTRIES, lines, strict=True):
        assert "\n" not in line
        assert yaml.safe_load(line) == [
            {"id": entry["name"], "type": entry["name"], "parameters": entry["example"]}
        ]


async def test_an_action_is_a_node_of_type_action(page: Page) -> None:
    entry = {"kind": "action", "name": "slack.post_message"}
    value = {"action": "slack.post_message", "connector": "slack", "input": TRICKY}
    line, node_id = await call(
        page,
        "nodebuilder.js",
        """(m, a) => {
          const id = m.defaultId(a.entry.name);
          return [m.nodeLine(a.entry, id, a.value), id];
        }""",
        {"entry": entry, "value": value},
    )
    assert node_id == "slack_post_message"
    assert line.startswith('- {"id": "slack_post_message", "type": "action", "parameters": {')
    assert yaml.safe_load(line) == [
        {"id": "slack_post_message", "type": "action", "parameters": value}
    ]


async def insert(page: Page, text: str, caret: int, line: str) -> dict[str, Any]:
    found: dict[str, Any] = await call(
        page,
        "lines.js",
        "(m, a) => m.insertLine(a.text, a.caret, a.line)",
        {"text": text, "caret": caret, "line": line},
    )
    return found


async def test_a_line_goes_at_the_caret_with_its_lines_indentation(page: Page) -> None:
    text = "nodes:\n  - id: a\n    type: noop\n\nedges: []\n"
    # On a line with text: above it, indented as it is.
    at = text.index("- id: a") + 3
    put = await insert(page, text, at, "- {}")
    assert put["text"] == "nodes:\n  - {}\n  - id: a\n    type: noop\n\nedges: []\n"
    assert put["text"][put["start"] : put["end"]] == "  - {}"
    # On an empty line: that line, filled.
    blank = text.index("\n\n") + 1
    put = await insert(page, text, blank, "- {}")
    assert put["text"] == "nodes:\n  - id: a\n    type: noop\n- {}\nedges: []\n"
    # A blank line's own spaces are its indentation; at the very end, the last line.
    put = await insert(page, "nodes:\n  ", 9, "- {}")
    assert put["text"] == "nodes:\n  - {}"
    put = await insert(page, "", 0, "- {}")
    assert put == {"text": "- {}", "start": 0, "end": 4}


async def test_an_output_schema_reads_as_lines(page: Page) -> None:
    http = next(e for e in ENTRIES if e["name"] == "http")
    lines = await call(page, "schema.js", "(m, s) => m.schemaLines(s)", http["output_schema"])
    assert lines[0].startswith("object - The answer of an ``http`` node")
    assert lines[1:] == [
        "  status: integer (required)",
        "  headers: map of string (required)",
        "  body: any (required)",
    ]
    words = await call(
        page,
        "schema.js",
        "(m, ss) => ss.map(m.typeWords)",
        [
            {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            {"type": "array", "items": {"type": "string"}},
            {"enum": ["a", 1]},
            {"const": "x"},
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        ],
    )
    assert words == [
        "integer or null",
        "list of string",
        "one of a, 1",
        "always x",
        "string or integer",
    ]


async def body_of(page: Page, values: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = await call(
        page, "connectorform.js", "(m, v) => m.connectorBody(v)", values
    )
    return found


async def test_a_connectors_form_is_read_into_its_put_body(page: Page) -> None:
    got = await body_of(
        page,
        {
            "base_url": " https://api.example.com/v2 ",
            "hosts": "api.example.com\n\n login.example.com \n",
            "headers": "Accept: application/json\nX-Note: a: b\n\n",
            "auth.kind": "oauth2_client_credentials",
            "auth.token_url": "https://login.example.com/token",
            "auth.client_id": "flowmesh",
            "auth.client_secret": "CLIENT_SECRET",
            "auth.scopes": "reports.read\nreports.write",
            "auth.audience": "",
            "auth.secret": "IGNORED_FOR_THIS_KIND",
        },
    )
    assert got == {
        "body": {
            "base_url": "https://api.example.com/v2",
            "hosts": ["api.example.com", "login.example.com"],
            "headers": {"Accept": "application/json", "X-Note": "a: b"},
            "auth": {
                "kind": "oauth2_client_credentials",
                "token_url": "https://login.example.com/token",
                "client_id": "flowmesh",
                "client_secret": "CLIENT_SECRET",
                "scopes": ["reports.read", "reports.write"],
            },
        },
        "problems": [],
    }
    # Required fields go empty to the API (which says where); optional ones are left out.
    got = await body_of(page, {"base_url": "https://x.example", "auth.kind": "basic", "hosts": ""})
    assert got["body"] == {
        "base_url": "https://x.example",
        "auth": {"kind": "basic", "username": "", "password_secret": ""},
    }
    got = await body_of(page, {"base_url": "", "auth.kind": "none", "headers": "Accept json"})
    assert got["problems"] == [{"path": "headers", "message": "line 1 is not “Name: value”"}]


async def test_an_api_path_finds_its_field(page: Page) -> None:
    paths = [
        "name",
        "base_url",
        "hosts[1]",
        'headers["X-Api-Key"]',
        "headers",
        "auth",
        "auth.kind",
        "auth.secret",
        "auth.scopes[0]",
        "auth.password_secret",
        "auth.unknown",
        "$",
    ]
    fields = await call(page, "connectorform.js", "(m, ps) => ps.map(m.fieldOfPath)", paths)
    assert fields == [
        "name",
        "base_url",
        "hosts",
        "headers",
        "headers",
        "auth.kind",
        "auth.kind",
        "auth.secret",
        "auth.scopes",
        "auth.password_secret",
        "auth.kind",
        None,
    ]


async def test_links_and_text_from_connectors_and_entries_stay_console_routes(page: Page) -> None:
    hostile = ["javascript:alert(1)", '"><img src=x onerror=alert(1)>', "a]\"'\\ #/admin/keys"]
    found = await call(
        page,
        "connectors.js",
        """async (m, hostile) => {
          const catalog = await import('./catalog.js');
          const entry = await import('./entry.js');
          const connectors = m.connectorsView({
            page: {items: hostile.map((text) => ({
              name: text, base_url: text, hosts: hostile, auth: {kind: text},
              version: 1, missing_secrets: hostile,
            })), next_cursor: null, has_more: false},
            onNext: () => null, onPrevious: null,
          });
          const entries = catalog.catalogView({
            filters: {kind: '', category: ''},
            page: {items: hostile.map((text) => ({kind: text, name: text, category: text,
              description: text})), next_cursor: null, has_more: false},
            onFilter: () => null, onNext: () => null, onPrevious: null,
          });
          const header = entry.entryHeader({name: hostile[1], kind: hostile[0],
            category: hostile[2], description: hostile[1],
            requires: {role: hostile[1], secrets: hostile}});
          document.body.replaceChildren(...connectors, entries, ...header);
          return {
            hrefs: [...document.querySelectorAll('[href]')].map((a) => a.getAttribute('href')),
            images: document.querySelectorAll('img').length,
            text: document.body.textContent,
          };
        }""",
        hostile,
    )
    assert len(found["hrefs"]) == 3 * 3 + 3 + 3 + 3  # missing secrets, names, entries, secrets
    assert all(href.startswith("#/") for href in found["hrefs"])
    assert found["images"] == 0
    assert hostile[1] in found["text"]
