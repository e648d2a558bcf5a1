"""The console's line diff (``diff.js``): two versions' YAML, line by line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from playwright.async_api import Page

from tests.unit.console_js import call, console_modules

DIFF = "(m, arg) => m.diffLines(arg.a, arg.b, arg.options)"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page() -> AsyncIterator[Page]:
    async for found in console_modules():
        yield found


async def diff(page: Page, a: str, b: str, **options: Any) -> list[tuple[str, str]]:
    ops = await call(page, "diff.js", DIFF, {"a": a, "b": b, "options": options})
    return [(op["op"], op["text"]) for op in ops]


def sides(ops: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The old and the new document, read back from a diff."""
    old = [text for op, text in ops if op != "add"]
    new = [text for op, text in ops if op != "del"]
    return old, new


async def test_identical_documents_are_all_same(page: Page) -> None:
    text = "name: w\nnodes:\n- id: a\n"
    assert await diff(page, text, text) == [
        ("same", "name: w"),
        ("same", "nodes:"),
        ("same", "- id: a"),
    ]


async def test_an_inserted_line(page: Page) -> None:
    ops = await diff(page, "a\nb\nc\n", "a\nb\nx\nc\n")
    assert ops == [("same", "a"), ("same", "b"), ("add", "x"), ("same", "c")]


async def test_a_deleted_line(page: Page) -> None:
    ops = await diff(page, "a\nb\nc\n", "a\nc\n")
    assert ops == [("same", "a"), ("del", "b"), ("same", "c")]


async def test_a_replaced_line_is_deleted_then_added(page: Page) -> None:
    ops = await diff(
        page, "name: w\ntimeout: PT1H\nnodes: []\n", "name: w\ntimeout: PT2H\nnodes: []\n"
    )
    assert ops == [
        ("same", "name: w"),
        ("del", "timeout: PT1H"),
        ("add", "timeout: PT2H"),
        ("same", "nodes: []"),
    ]


async def test_empty_sides(page: Page) -> None:
    assert await diff(page, "", "") == []
    assert await diff(page, "", "a\nb") == [("add", "a"), ("add", "b")]
    assert await diff(page, "a\nb\n", "") == [("del", "a"), ("del", "b")]


async def test_the_diff_is_shortest_and_reads_back_both_sides(page: Page) -> None:
    a = "a\nb\nc\nd\ne\nf\n"
    b = "b\nc\nx\ne\nf\ng\n"
    ops = await diff(page, a, b)
    assert sides(ops) == (a.split(), b.split())
    assert sum(op == "same" for op, _ in ops) == 4  # b c e f: the longest common part


async def test_big_documents_are_bounded_but_still_a_true_diff(page: Page) -> None:
    # 3,000 changed lines each side: 6,000 edits, over the bound; the common head and tail
    # are kept, the middle is shown as removed then added, and it returns at once.
    head = [f"keep {i}" for i in range(500)]
    old = head + [f"old {i}" for i in range(3000)] + ["tail"]
    new = head + [f"new {i}" for i in range(3000)] + ["tail"]
    ops = await diff(page, "\n".join(old), "\n".join(new))
    assert sides(ops) == (old, new)
    assert ops[:500] == [("same", t) for t in head] and ops[-1] == ("same", "tail")
    assert [op for op, _ in ops[500:3500]] == ["del"] * 3000
    # Under the bound the shortest diff is found: the same lines, interleaved with kept ones.
    mixed_old = [line if i % 3 else f"keep {i}" for i, line in enumerate(old[500:1100])]
    mixed_new = [line if i % 3 else f"keep {i}" for i, line in enumerate(new[500:1100])]
    mixed = await diff(page, "\n".join(mixed_old), "\n".join(mixed_new), maxEdits=1000)
    assert sides(mixed) == (mixed_old, mixed_new)
    assert sum(op == "same" for op, _ in mixed) == 200
    bounded = await diff(page, "\n".join(mixed_old), "\n".join(mixed_new), maxEdits=10)
    assert sides(bounded) == (mixed_old, mixed_new)
    assert sum(op == "same" for op, _ in bounded) == 1  # only the common head


async def test_a_long_document_with_a_few_changes_is_exact(page: Page) -> None:
    old = [f"line {i}" for i in range(5000)]
    new = list(old)
    new[10] = "changed"
    del new[2000]
    new.insert(4000, "inserted")
    ops = await diff(page, "\n".join(old), "\n".join(new))
    assert sides(ops) == (old, new)
    changes = [(op, text) for op, text in ops if op != "same"]
    assert changes == [
        ("del", "line 10"),
        ("add", "changed"),
        ("del", "line 2000"),
        ("add", "inserted"),
    ]


FOLD = "(m, arg) => m.foldUnchanged(m.diffLines(arg.a, arg.b), arg.context)"


def folded(entries: list[dict[str, Any]]) -> list[str]:
    """Each entry as "<op> <left>/<right> <text>", a fold as "skip <how many>"."""
    return [
        f"skip {len(e['lines'])}"
        if e["op"] == "skip"
        else f"{e['op']} {e['left']}/{e['right']} {e['text']}"
        for e in entries
    ]


async def test_unchanged_runs_away_from_a_change_are_folded(page: Page) -> None:
    old = [f"l{i}" for i in range(1, 21)]
    new = list(old)
    new[9] = "changed"  # line 10
    entries = await call(
        page, "diff.js", FOLD, {"a": "\n".join(old), "b": "\n".join(new), "context": 2}
    )
    assert folded(entries) == [
        "skip 7",
        "same 8/8 l8",
        "same 9/9 l9",
        "del 10/0 l10",
        "add 0/10 changed",
        "same 11/11 l11",
        "same 12/12 l12",
        "skip 8",
    ]
    assert entries[0]["lines"][0] == {"op": "same", "text": "l1", "left": 1, "right": 1}
    # A short run between two changes is kept whole; an identical text is one fold.
    new[13] = "again"
    entries = await call(
        page, "diff.js", FOLD, {"a": "\n".join(old), "b": "\n".join(new), "context": 2}
    )
    assert "skip" not in " ".join(folded(entries)[2:-1])
    same = await call(page, "diff.js", FOLD, {"a": "a\nb", "b": "a\nb", "context": 3})
    assert folded(same) == ["skip 2"]
