"""The pure cores (the import-linter contracts named "pure cores") never read the clock:
they take ``now``. import-linter keeps the ``time`` module out; ``datetime`` is needed for
its types, so its clock reads are looked for here."""

from __future__ import annotations

import ast
import importlib.util
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: ``<class>.<method>`` calls that read the clock.
CLOCK_READS = frozenset(
    {"datetime.now", "datetime.utcnow", "datetime.today", "date.today", "datetime.fromtimestamp"}
)


def pure_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    found = [c["source_modules"] for c in contracts if "pure cores" in c["name"].lower()]
    assert len(found) == 2, "the pure-core contracts were renamed: find them again here"
    return sorted({module for modules in found for module in modules})


def files_of(module: str) -> Iterator[Path]:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    if spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            yield from sorted(Path(location).rglob("*.py"))
    else:
        yield Path(spec.origin)


def clock_reads(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            call = f"{name}.{node.func.attr}"
            if call in CLOCK_READS:
                found.append(f"line {node.lineno}: {call}()")
    return found


@pytest.mark.parametrize("module", pure_modules())
def test_a_pure_core_reads_no_clock(module: str) -> None:
    for path in files_of(module):
        assert clock_reads(path.read_text()) == [], f"{path.relative_to(ROOT)} reads the clock"


def test_clock_reads_are_found() -> None:
    source = "import datetime as dt\nfrom datetime import UTC, datetime\n"
    source += "a = datetime.now(UTC)\nb = dt.datetime.now()\nc = dt.date.today()\n"
    source += "d = datetime.fromisoformat('2026-01-01')\n"
    assert clock_reads(source) == [
        "line 3: datetime.now()",
        "line 4: datetime.now()",
        "line 5: date.today()",
    ]
