"""A hostile tenant's text where the console builds links and looks nodes up: every ``href``
made from user data stays a ``#`` route of the console (no ``javascript:`` URL), and a node
id made of quotes and brackets is neither markup nor a broken selector."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import Page

from tests.unit.console_js import call, console_modules

HOSTILE = ["javascript:alert(1)", '"><img src=x onerror=alert(1)>', "a]\"'\\ #/admin/keys"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page() -> AsyncIterator[Page]:
    async for found in console_modules():
        yield found


async def test_links_built_from_user_data_stay_console_routes(page: Page) -> None:
    found = await call(
        page,
        "workflows.js",
        """async (m, hostile) => {
          const audit = await import('./audit.js');
          const list = m.workflowsView({
            filters: {q: hostile[0], enabled: '', category: '', tags: hostile[1]},
            page: {items: hostile.map((text) => ({
              id: text, name: text, version: 1, enabled: true, tags: hostile,
              last_execution_status: null,
            })), has_more: false, next_cursor: null},
            canImport: false, onSearch: () => null, onNext: () => null, onPrevious: null,
          });
          const log = audit.auditView({
            filters: {action: '', actor: '', target: ''},
            page: {items: hostile.map((text, i) => ({
              id: i, actor: text, action: text, target: text, outcome: text,
              request_id: text, detail: {x: text}, at: '2026-01-01T00:00:00Z',
            })), next_cursor: null, has_more: false},
            names: new Map(),
            onFilter: () => null, onNext: () => null, onPrevious: null,
          });
          const all = [list, log];
          document.body.replaceChildren(...all);
          return {
            hrefs: [...document.querySelectorAll('[href]')].map((a) => a.getAttribute('href')),
            images: document.querySelectorAll('img').length,
            handlers: [...document.querySelectorAll('*')].flatMap((n) =>
              [...n.attributes].map((a) => a.name).filter((name) => name.startsWith('on'))),
            protocols: [...document.querySelectorAll('a')].map((a) => a.protocol),
          };
        }""",
        HOSTILE,
    )
    assert found["hrefs"] and all(href.startswith("#/") for href in found["hrefs"])
    assert not any("javascript:" in href for href in found["hrefs"])
    assert set(found["protocols"]) == {"http:"}  # the page's own origin, never javascript:
    assert found["images"] == 0 and found["handlers"] == []


async def test_a_node_id_of_quotes_and_brackets_is_painted_as_text(page: Page) -> None:
    nodes = [{"id": text, "type": text} for text in HOSTILE]
    painted = await call(
        page,
        "dag.js",
        """(m, [nodes, hostile]) => {
          const drawing = m.drawDag(m.graphOf({name: 'x', nodes, edges: []}));
          document.body.replaceChildren(drawing);
          m.paint(drawing, Object.fromEntries(hostile.map((id) => [id, 'failed'])));
          return {
            classes: [...drawing.querySelectorAll('g.node')].map((g) => g.getAttribute('class')),
            images: document.querySelectorAll('img').length,
            titles: [...drawing.querySelectorAll('title')].map((t) => t.textContent),
          };
        }""",
        [nodes, HOSTILE],
    )
    assert painted["classes"] == ["node status-failed"] * 3
    assert painted["images"] == 0
    assert painted["titles"] == [f"{text} ({text})" for text in HOSTILE]
