"""The console's DAG (``dag.js``): what is drawn from a definition, and where."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from playwright.async_api import Page

from tests.unit.console_js import call, console_modules

GRAPH = "(m, d) => m.graphOf(d)"
#: The layout, as plain data: {id: [column, row]} and the size.
PLACED = """(m, d) => {
  const placed = m.layout(m.graphOf(d));
  const at = {};
  for (const [id, p] of placed.positions) at[id] = [p.column, p.row];
  return {at, width: placed.width, height: placed.height};
}"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page() -> AsyncIterator[Page]:
    async for found in console_modules():
        yield found


def definition(nodes: list[str], edges: list[tuple[str, str]], **more: Any) -> dict[str, Any]:
    return {
        "name": "w",
        "nodes": [{"id": n, "type": "noop"} for n in nodes],
        "edges": [{"from": a, "to": b} for a, b in edges],
        **more,
    }


async def test_every_node_once_and_only_edges_between_known_nodes(page: Page) -> None:
    d = {
        "nodes": [
            {"id": "a", "type": "http"},
            {"id": "a", "type": "noop"},  # a duplicate id: the first stays
            {"type": "noop"},  # no id
            "not a node",
            {"id": "b"},
        ],
        "edges": [
            {"from": "a", "to": "b", "when": True},
            {"from": "a", "to": "ghost"},
            {"from": "b", "to": "b"},
            None,
        ],
    }
    graph = await call(page, "dag.js", GRAPH, d)
    assert graph == {
        "nodes": [{"id": "a", "type": "http"}, {"id": "b", "type": "?"}],
        "edges": [{"from": "a", "to": "b", "when": "true"}],
    }
    for broken in (None, {}, {"nodes": "x", "edges": 3}, []):
        assert await call(page, "dag.js", GRAPH, broken) == {"nodes": [], "edges": []}


async def test_a_node_sits_one_column_after_its_furthest_parent(page: Page) -> None:
    # a -> b -> c -> d, and a -> d directly: d is in column 3, not 1.
    d = definition(["d", "c", "b", "a"], [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])
    placed = await call(page, "dag.js", PLACED, d)
    assert {n: at[0] for n, at in placed["at"].items()} == {"a": 0, "b": 1, "c": 2, "d": 3}
    assert all(at[1] == 0 for at in placed["at"].values())


async def test_rows_follow_the_parents_so_edges_do_not_cross(page: Page) -> None:
    # Two chains whose second column is declared in the opposite order.
    d = definition(["a", "b", "y", "x"], [("a", "x"), ("b", "y")])
    placed = await call(page, "dag.js", PLACED, d)
    assert placed["at"] == {"a": [0, 0], "b": [0, 1], "x": [1, 0], "y": [1, 1]}


async def test_a_cycle_is_drawn_after_the_rest_instead_of_hanging(page: Page) -> None:
    d = definition(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "b")])
    placed = await call(page, "dag.js", PLACED, d)
    assert placed["at"]["a"] == [0, 0]
    assert placed["at"]["b"][0] == placed["at"]["c"][0] == 1


async def test_the_drawing_has_a_group_per_node_and_names_are_text(page: Page) -> None:
    d = definition(["start", "<img src=x onerror=alert(1)>"], [])
    d["nodes"][1]["id"] = "x"
    d["nodes"][1]["type"] = "<img src=x onerror=alert(1)>"
    drawn = await call(
        page,
        "dag.js",
        """(m, d) => {
          const drawing = m.drawDag(m.graphOf(d));
          document.body.replaceChildren(drawing);
          m.paint(drawing, {start: "succeeded", ghost: "failed"});
          return {
            nodes: [...drawing.querySelectorAll("g.node")]
              .map((g) => [g.dataset.node, g.getAttribute("class")]),
            images: document.querySelectorAll("img").length,
            text: drawing.textContent,
          };
        }""",
        d,
    )
    assert drawn["nodes"] == [["start", "node status-succeeded"], ["x", "node"]]
    assert drawn["images"] == 0
    assert "<img src=x" in drawn["text"]


async def test_five_hundred_nodes_are_laid_out_and_drawn(page: Page) -> None:
    nodes = [f"n{i}" for i in range(500)]
    edges = [(f"n{i}", f"n{i + 1}") for i in range(0, 499)] + [
        (f"n{i}", f"n{i + 7}") for i in range(0, 493, 3)
    ]
    drawn = await call(
        page,
        "dag.js",
        """(m, d) => {
          const drawing = m.drawDag(m.graphOf(d));
          document.body.replaceChildren(drawing);
          return drawing.querySelectorAll("g.node").length;
        }""",
        definition(nodes, edges),
    )
    assert drawn == 500
