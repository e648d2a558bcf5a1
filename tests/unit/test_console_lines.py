"""Where a problem of the API is in a document (``lines.js``), and the editor that shows it
(``editor.js``): lines, paths, and problems placed at their lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from playwright.async_api import Page

from tests.unit.console_js import call, console_modules

#: What export writes for a small workflow (PyYAML, block style, indentless sequences).
YAML = """\
name: orders
description: Charge, then decide.
tags:
- orders
nodes:
- id: prepare
  type: transform
  parameters:
    output:
      total: '{{ trigger.data.total }}'
- id: big
  type: condition
  parameters:
    expression: nodes.prepare.output.total > 100
# a comment
- id: notify
  type: noop
edges:
- from: prepare
  to: big
- {from: big, to: notify, when: 'true'}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page() -> AsyncIterator[Page]:
    async for found in console_modules():
        yield found


async def lines(page: Page, body: str, arg: Any) -> Any:
    return await call(page, "lines.js", body, arg)


async def test_lines_and_offsets(page: Page) -> None:
    text = "a\nbc\n\nd"
    assert await lines(page, "(m, t) => m.lineStarts(t)", text) == [0, 2, 5, 6]
    assert await lines(page, "(m, t) => m.lineCount(t)", text) == 4
    assert await lines(page, "(m, t) => m.lineCount(t)", "") == 1
    ranges = "(m, t) => [1, 2, 3, 4, 99, 0].map((n) => m.lineRange(t, n))"
    assert await lines(page, ranges, text) == [[0, 1], [2, 4], [5, 5], [6, 7], [6, 7], [0, 1]]
    at = "(m, t) => [0, 1, 2, 4, 5, 6].map((o) => m.lineAt(t, o))"
    assert await lines(page, at, text) == [1, 1, 2, 2, 3, 4]


async def test_paths_are_parsed(page: Page) -> None:
    body = "(m, paths) => paths.map((p) => m.parsePath(p))"
    paths = ["$", "name", "nodes[2].parameters.url", '$.vars["a.b"][0]', "edges[10]"]
    assert await lines(page, body, paths) == [
        [],
        ["name"],
        ["nodes", 2, "parameters", "url"],
        ["vars", "a.b", 0],
        ["edges", 10],
    ]


async def test_problems_are_placed_by_their_line_else_listed(page: Page) -> None:
    problems = [
        {"path": "nodes[1].parameters.expression", "code": "MISSING_VARIABLE", "message": "m1"},
        {"path": "nodes[0].type", "code": "INVALID_NODES", "message": "m2", "line": 7, "column": 9},
        {"path": "$", "code": "INVALID_EXPORT_FORMAT", "message": "m3"},
        {"path": "edges[0].to", "code": "INVALID_EDGES", "message": "m4", "line": 999},
    ]
    placed = await lines(
        page,
        "(m, arg) => m.placeProblems(arg.problems, arg.text)",
        {
            "problems": problems,
            "text": YAML,
        },
    )
    assert [(line, [p["message"] for p in found]) for line, found in placed["byLine"]] == [
        (7, ["m2"]),
    ]
    # No line, or a line past the end of the text: listed with their paths.
    assert [p["message"] for p in placed["unplaced"]] == ["m1", "m3", "m4"]


async def test_problem_text_and_formats(page: Page) -> None:
    body = "(m, ps) => ps.map((p) => m.problemText(p))"
    said = await lines(
        page,
        body,
        [
            {"path": "nodes[0].type", "message": "unknown node type", "line": 7, "column": 9},
            {"path": "name", "message": "too long", "line": 1},
            {"path": "$", "code": "INVALID_EXPORT_FORMAT", "message": "not valid YAML"},
        ],
    )
    assert said == [
        "line 7:9: unknown node type (nodes[0].type)",
        "line 1: too long (name)",
        "not valid YAML",
    ]
    formats = "(m, ts) => ts.map((t) => m.formatOf(t))"
    assert await lines(page, formats, ['  {"name": "w"}', "name: w", "", "- {a: 1}"]) == [
        "json",
        "yaml",
        "yaml",
        "yaml",
    ]


async def test_the_editor_marks_lines_and_moves_the_caret(page: Page) -> None:
    body = """(m, text) => {
      const all = (selector) => [...editor.node.querySelectorAll(selector)];
      const editor = m.editorView({id: "t", text});
      document.body.replaceChildren(editor.node);
      editor.setProblems([
        {path: "nodes[1].parameters.expression", code: "MISSING_VARIABLE", message: "<b>m1</b>",
         line: 14, column: 17},
        {path: "$", code: "X", message: "whole"},
      ]);
      const item = editor.node.querySelector('[data-line="14"] button');
      item.click();
      const area = editor.textarea;
      return {
        marked: all(".gutter-line.has-problem").map((n) => n.dataset.number),
        bands: all(".line-band").map((n) => n.dataset.band),
        numbers: editor.node.querySelectorAll(".gutter-line").length,
        item: item.textContent,
        bold: editor.node.querySelectorAll("b").length,
        unplaced: all(".problems-unplaced li").map((n) => n.textContent),
        caret: area.value.slice(area.selectionStart, area.selectionEnd),
      };
    }"""
    seen = await call(page, "editor.js", body, YAML)
    assert seen == {
        "marked": ["14"],
        "bands": ["14"],
        "numbers": 22,  # 21 lines and the empty one after the last newline
        "item": "line 14:17: <b>m1</b> (nodes[1].parameters.expression)",
        "bold": 0,
        "unplaced": ["whole"],
        "caret": "    expression: nodes.prepare.output.total > 100",
    }


async def test_the_gutter_changes_only_where_it_must(page: Page) -> None:
    """A workflow whose description is 130,000 newlines (within the definition limit) is
    130,000 gutter numbers: redrawing them all on each Enter and each validation froze the
    page for seconds. Numbers are added and removed at the end, marks moved one by one."""
    body = """(m, n) => {
      const editor = m.editorView({id: "big", text: "a\\nb\\nc\\nd\\n"});
      document.body.replaceChildren(editor.node);
      const gutter = () => [...editor.node.querySelectorAll(".gutter-line")];
      const seen = () => gutter().map((g) => [g.dataset.number, g.className, g.title]);
      const first = gutter()[0];
      const type = (text) => {
        editor.textarea.value = text;
        editor.textarea.dispatchEvent(new Event("input"));
      };
      editor.setProblems([{path: "b", code: "X", message: "one", line: 2}]);
      const marked = seen();
      type("a\\nb\\nc\\nd\\ne\\nf\\n");
      const longer = seen();
      editor.setProblems([{path: "d", code: "X", message: "two", line: 4}]);
      const moved = seen();
      type("a\\n");
      const shorter = seen();
      type("a\\nb\\nc\\nd\\n");
      const again = seen();
      const kept = gutter()[0] === first;

      const big = m.editorView({id: "bigger", text: 'd: "' + "\\n".repeat(n) + '"\\n'});
      document.body.replaceChildren(big.node);
      document.body.offsetHeight;
      const began = performance.now();
      big.setProblems([{path: "d", code: "X", message: "m", line: 1, column: 1}]);
      document.body.offsetHeight;
      return {marked, longer, moved, shorter, again, kept, ms: performance.now() - began,
              bigMarked: [...big.node.querySelectorAll(".has-problem")]
                .map((g) => g.dataset.number)};
    }"""
    seen = await call(page, "editor.js", body, 130_000)
    plain = "gutter-line"
    bad = "gutter-line has-problem"
    assert seen["marked"] == [
        ["1", plain, ""],
        ["2", bad, "one"],
        ["3", plain, ""],
        ["4", plain, ""],
        ["5", plain, ""],
    ]
    assert seen["longer"] == seen["marked"] + [["6", plain, ""], ["7", plain, ""]]
    assert [n for n, c, _ in seen["moved"] if c == bad] == ["4"]
    assert seen["moved"][3] == ["4", bad, "two"] and seen["moved"][1] == ["2", plain, ""]
    assert seen["shorter"] == [["1", plain, ""], ["2", plain, ""]]
    assert seen["again"][3] == ["4", bad, "two"] and len(seen["again"]) == 5
    assert seen["kept"]  # the numbers that stay are the same nodes, never redrawn
    assert seen["bigMarked"] == ["1"]
    assert seen["ms"] < 1500  # 3.4 s when the whole gutter was drawn again
