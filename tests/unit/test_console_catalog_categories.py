"""The console's catalog filter offers exactly the catalog's categories (no drift)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flowmesh_proto.entries import ENTRY_CATEGORIES

CATALOG_JS = (
    Path(__file__).resolve().parents[2]
    / "services/gateway/src/flowmesh_gateway/console_ui/catalog.js"
)


def test_the_category_filter_lists_every_entry_category() -> None:
    found = re.search(r"export const CATEGORIES = (\[[^\]]*\]);", CATALOG_JS.read_text())
    assert found is not None
    assert json.loads(found.group(1)) == list(ENTRY_CATEGORIES)
