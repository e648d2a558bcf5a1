"""Console drawing benchmark (issue 16): how long the console takes to draw a 500-node
workflow's DAG in Debian's Chromium, from the definition in hand to the first frame painted.

The console's own files (from the installed gateway package) are served to Chromium by
Playwright, with the console's stylesheet, in a 1100x640 window. Each sample calls
``dag.js`` as the workflow and run pages do: ``graphOf`` + ``layout`` + ``drawDag``, puts
the SVG in the page, then waits for the next frame (style, layout and paint included).
Shapes: a chain, a wide fan-out and fan-in, and a random DAG (each node has 1-3 parents
among the 20 before it); then the same draw followed by ``paint`` of every node's
status, as a run page does on each event batch.

    uv run python bench/console.py --out bench/results/console.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.async_api import Route, async_playwright
from workload import summary, write_results

from flowmesh_gateway.pages import FILES, SECURITY_HEADERS, read_files

ORIGIN = "http://console.bench"
PAGE = (
    b"<!doctype html><html><head><meta charset='utf-8'>"
    b"<link rel='stylesheet' href='style.css'></head>"
    b"<body><main><div class='dag-frame' id='frame'></div></main></body></html>"
)
DRAW = """async ({definition, samples, painted}) => {
  const m = await import('./dag.js');
  const frame = document.getElementById('frame');
  const times = [];
  const statuses = Object.fromEntries(definition.nodes.map((n, i) =>
    [n.id, ['succeeded', 'running', 'pending', 'failed'][i % 4]]));
  for (let i = 0; i < samples; i += 1) {
    frame.replaceChildren();
    await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
    const start = performance.now();
    const drawing = m.drawDag(m.graphOf(definition));
    frame.replaceChildren(drawing);
    if (painted) m.paint(drawing, statuses);
    await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
    times.push(performance.now() - start);
  }
  return times;
}"""


def shape(name: str, size: int) -> dict[str, Any]:
    ids = [f"step_{i}" for i in range(size)]
    edges: list[tuple[str, str]]
    if name == "chain":
        edges = [(ids[i], ids[i + 1]) for i in range(size - 1)]
    elif name == "wide":
        edges = [(ids[0], x) for x in ids[1:-1]] + [(x, ids[-1]) for x in ids[1:-1]]
    else:
        rng = random.Random(16)
        edges = []
        for i in range(1, size):
            low = max(0, i - 20)
            edges += [(ids[p], ids[i]) for p in rng.sample(range(low, i), min(i - low, 3))]
    return {
        "name": f"{name}-{size}",
        "nodes": [{"id": x, "type": "http"} for x in ids],
        "edges": [{"from": a, "to": b} for a, b in edges],
    }


async def run(samples: int, size: int) -> dict[str, Any]:
    files = read_files()

    async def serve(route: Route) -> None:
        name = route.request.url.removeprefix(f"{ORIGIN}/console/")
        if name == "bench.html":
            await route.fulfill(body=PAGE, content_type="text/html", headers=SECURITY_HEADERS)
        elif name in FILES:
            await route.fulfill(body=files[name], content_type=FILES[name])
        else:
            await route.fulfill(status=404, body=b"")

    chromium = os.environ.get("FLOWMESH_TEST_CHROMIUM", "/usr/bin/chromium")
    results: dict[str, Any] = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium)
        page = await browser.new_page(viewport={"width": 1100, "height": 640})
        await page.route(f"{ORIGIN}/**", serve)
        await page.goto(f"{ORIGIN}/console/bench.html")
        for name in ("chain", "wide", "random"):
            for painted in (False, True):
                arg = {"definition": shape(name, size), "samples": samples, "painted": painted}
                times = await page.evaluate(DRAW, arg)
                key = f"{name}-{size}" + (" + paint" if painted else "")
                results[key] = summary([t / 1000 for t in times])
                print(key, results[key])
        await browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = datetime.now(UTC)
    results = asyncio.run(run(args.samples, args.nodes))
    write_results("console.py", started, results, args.out, note="Debian chromium, headless")


if __name__ == "__main__":
    main()
