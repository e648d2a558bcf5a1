"""What the benchmarks store and how they summarise latencies (shared by bench/*.py)."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import statistics
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp


def definition(i: int) -> dict[str, Any]:
    """A realistic small workflow: five nodes, a branch, templates and expressions."""
    return {
        "name": f"bench-{i:05d}",
        "description": f"Benchmark workflow number {i}",
        "category": random.choice(["automation", "integration", "notification"]),
        "tags": [f"team-{i % 20}", "bench"],
        "nodes": [
            {
                "id": "prepare",
                "type": "transform",
                "parameters": {"output": {"id": "{{ trigger.data.id }}", "n": i}},
            },
            {
                "id": "check",
                "type": "condition",
                "parameters": {"expression": "nodes.prepare.output.n > 10"},
            },
            {
                "id": "call",
                "type": "http",
                "parameters": {
                    "method": "POST",
                    "url": "https://example.com/hook",
                    "body": {"id": "{{ nodes.prepare.output.id }}"},
                },
            },
            {"id": "skip", "type": "noop"},
            {"id": "done", "type": "noop"},
        ],
        "edges": [
            {"from": "prepare", "to": "check"},
            {"from": "check", "to": "call", "when": "true"},
            {"from": "check", "to": "skip", "when": "false"},
            {"from": "call", "to": "done"},
            {"from": "skip", "to": "done"},
        ],
    }


def summary(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3)

    return {
        "n": len(ordered),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


async def wait_ready(url: str, process: asyncio.subprocess.Process, what: str) -> None:
    """Until ``url`` answers 200; exits if ``process`` dies or 30 s pass."""
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if process.returncode is not None:
                raise SystemExit(f"the {what} exited with {process.returncode}")
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"the {what} did not become ready")


def write_results(
    script: str,
    started: datetime,
    results: dict[str, Any],
    out: Path | None,
    *,
    note: str = "",
    **extra: Any,
) -> None:
    """Print the results document (the command that made it, when, on what) and write it
    to ``out`` when given."""
    machine: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    if note:
        machine["note"] = note
    document = {
        "command": " ".join([f"uv run python bench/{script}", *sys.argv[1:]]),
        "started_at": started.isoformat(),
        "machine": machine,
        **extra,
        "results": results,
    }
    text = json.dumps(document, indent=2)
    if out:
        out.write_text(text + "\n")
    print(text)
