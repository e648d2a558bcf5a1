"""Expression cost units: what one unit of :mod:`flowmesh_shared.expression_cost` costs here.

For shapes of expression that stress each part of the bound (reading data into CEL,
``map`` and ``filter`` that copy the list they build, ``exists``, two nested levels,
string and list building, ``matches``, ``in``) over growing data, it prints the units the
bound gives and the time the CEL runtime really takes (best of 3), and the worst
microseconds per unit: the default budget (20,000 units) is "about 12 ms at worst" because
of that figure. It also measures what the budget check adds to a cheap expression (the
fast path of every transform and condition), against evaluating without it.

    uv run python bench/expressions.py --out bench/results/expressions.json
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cel
from workload import write_results

from flowmesh_shared.expression_cost import data_size
from flowmesh_shared.expressions import Meter, compile_expression, evaluate

Shape = tuple[str, Callable[[int], Any]]
SHAPES: dict[str, Shape] = {
    "read": (
        "size(trigger.data.items)",
        lambda k: {"items": [{"id": i, "name": f"item-{i}", "tags": ["a", "b"]} for i in range(k)]},
    ),
    "map": ("trigger.data.items.map(a, a + 1)", lambda k: {"items": list(range(k))}),
    "map_objects": (
        "trigger.data.items.map(a, a.id)",
        lambda k: {"items": [{"id": i, "name": "x"} for i in range(k)]},
    ),
    "filter": ("trigger.data.items.filter(a, a > 0)", lambda k: {"items": list(range(k))}),
    "exists": ("trigger.data.items.exists(a, a < 0)", lambda k: {"items": list(range(k))}),
    "nested_map": (
        "trigger.data.items.map(a, trigger.data.items.map(b, a + b))",
        lambda k: {"items": list(range(k))},
    ),
    "nested_exists": (
        "trigger.data.items.exists(a, trigger.data.items.exists(b, a + b < 0))",
        lambda k: {"items": list(range(k))},
    ),
    "concat": ("trigger.data.s + trigger.data.s + trigger.data.s", lambda k: {"s": "x" * k * 16}),
    "map_building_text": (
        "trigger.data.items.map(a, trigger.data.s + string(a))",
        lambda k: {"items": list(range(k)), "s": "y" * k},
    ),
    "matches": ("trigger.data.s.matches('(a|b)*c')", lambda k: {"s": "ab" * k * 8}),
    "list_concat": ("trigger.data.items + trigger.data.items", lambda k: {"items": list(range(k))}),
    # patterns: the runtime compiles them at every call, so a class's size is what costs
    "pattern_word": (
        'trigger.data.items.exists(x, "k".matches("\\\\w{3}"))',
        lambda k: {"items": list(range(k // 10 + 1))},
    ),
    "pattern_digit": (
        'trigger.data.items.exists(x, "k".matches("\\\\d{20}"))',
        lambda k: {"items": list(range(k // 10 + 1))},
    ),
    "pattern_any": (
        'trigger.data.items.exists(x, "k".matches(".{50}"))',
        lambda k: {"items": list(range(k // 10 + 1))},
    ),
    "pattern_literal": (
        'trigger.data.items.exists(x, "k".matches("((a{10}){10}){5}"))',
        lambda k: {"items": list(range(k // 10 + 1))},
    ),
    "in": ("-1 in trigger.data.items", lambda k: {"items": list(range(k))}),
}
SIZES = (10, 100, 300, 1000, 3000)
NESTED_SIZES = (10, 100, 300)


def best_of(program: Any, context: dict[str, Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        program.execute(context)
        best = min(best, time.perf_counter() - started)
    return best


def calibrate() -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for name, (source, make) in SHAPES.items():
        program, cost = cel.compile(source), compile_expression(source).cost
        for k in NESTED_SIZES if name.startswith("nested") else SIZES:
            context = {"trigger": {"data": make(k)}}
            n = data_size(context["trigger"]["data"], 10**9) + 2
            seconds = best_of(program, context)
            units = cost.units(n)
            rows.append(
                {
                    "shape": name,
                    "k": k,
                    "data_units": n,
                    "units": round(units),
                    "us": round(seconds * 1e6, 1),
                    "us_per_unit": round(seconds * 1e6 / units, 4),
                }
            )
            print(f"{name:18} k={k:5} n={n:7} units={units:14,.0f} {seconds * 1e3:10.3f} ms")
    worst = max(rows, key=lambda r: r["us_per_unit"])
    return {"rows": rows, "worst_us_per_unit": worst["us_per_unit"], "worst_shape": worst}


def fast_path(count: int = 20_000) -> dict[str, float]:
    """A transform's cheap template, with the check (as the executor runs it) and without."""
    source = "trigger.data.customer.id + 1"
    context = {"trigger": {"kind": "api", "data": {"customer": {"id": 7}, "n": 3}}}
    expression = compile_expression(source)
    scope = {"trigger": context["trigger"]}
    started = time.perf_counter()
    for _ in range(count):
        expression.program.execute(scope)
    bare = (time.perf_counter() - started) / count
    started = time.perf_counter()
    for _ in range(count):
        evaluate(expression, context, Meter())
    checked = (time.perf_counter() - started) / count
    return {"bare_us": round(bare * 1e6, 2), "checked_us": round(checked * 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = datetime.now(UTC)
    results = {"calibration": calibrate(), "fast_path": fast_path()}
    print(results["fast_path"], "worst us/unit:", results["calibration"]["worst_us_per_unit"])
    write_results("expressions.py", started, results, args.out)


if __name__ == "__main__":
    main()
