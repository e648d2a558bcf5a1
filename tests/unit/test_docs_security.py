"""Every test docs/security.md names as proof (``path::test_name``) exists.

The threat model is only as true as its tests: a renamed or deleted test must not leave a
row that cites nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "security.md"
_CITED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _tests_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_cited_test_exists() -> None:
    cited = _CITED.findall(DOCUMENT.read_text())
    assert len(cited) > 50
    missing = [
        f"{path}::{name}"
        for path, name in cited
        if not (ROOT / path).exists() or name not in _tests_of(ROOT / path)
    ]
    assert not missing, f"docs/security.md cites tests that do not exist: {missing}"
