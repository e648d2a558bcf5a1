"""The run page's timeline (``timeline.js``: where each attempt's bar goes) and the runs
list's filters (``runs.js``), in Chromium with no server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import Page

from tests.unit.console_js import call, console_modules
from tests.unit.test_console_fold import SCENARIOS, wire


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page() -> AsyncIterator[Page]:
    async for found in console_modules():
        yield found


async def test_bars_span_the_run_and_show_the_retry_delay(page: Page) -> None:
    placed = await call(
        page,
        "timeline.js",
        """async (m, events) => {
          const fold = await import("./fold.js");
          return m.bars(fold.foldAll(events), "2025-01-01T00:00:01Z");
        }""",
        wire(SCENARIOS["retry then success"]),
    )
    # The run started at 1 ms and is still running: the span ends at `now` (1 s).
    assert placed["span_ms"] == 999
    [row] = placed["rows"]
    assert row["node_id"] == "a"
    first, second = row["bars"]
    assert (first["outcome"], second["outcome"]) == ("failed", "succeeded")
    assert first["x"] < second["x"]
    width = 560
    assert abs(first["retryWidth"] - 200 / 999 * width) < 0.01
    assert abs(second["x"] - (202 / 999) * width) < 0.01
    assert all(b["width"] >= 2 for b in row["bars"])


async def test_a_run_with_no_attempt_has_no_rows(page: Page) -> None:
    placed = await call(
        page,
        "timeline.js",
        """async (m, events) => {
          const fold = await import("./fold.js");
          return m.bars(fold.foldAll(events), "2025-01-01T00:00:01Z");
        }""",
        wire(SCENARIOS["waiting, then started"]),
    )
    assert placed["rows"] == []


async def test_the_filters_come_from_the_url_and_times_round_trip(page: Page) -> None:
    found = await call(
        page,
        "runs.js",
        """(m) => ({
          filters: m.filtersOf(new URLSearchParams("status=failed&workflow_id=w&cursor=c")),
          back: m.fromLocalInput(m.toLocalInput("2026-03-04T05:06:00.000Z")),
          empty: [m.toLocalInput(""), m.toLocalInput("nonsense"), m.fromLocalInput("")],
        })""",
    )
    assert found["filters"] == {
        "status": "failed",
        "workflow_id": "w",
        "trigger_kind": "",
        "created_after": "",
        "created_before": "",
    }
    assert found["back"] == "2026-03-04T05:06:00.000Z"
    assert found["empty"] == ["", "", ""]
