"""How answers are printed: ``-o json`` (one JSON document), ``-o yaml``, or ``-o table``
(aligned columns chosen per kind of resource; the default). Pure: values in, text out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec
import yaml

from flowmesh_proto.runs import ErrorInfo

Format = Literal["json", "yaml", "table"]
FORMATS: tuple[Format, ...] = ("table", "json", "yaml")

#: Characters of an error a table cell shows (``-o yaml`` shows it whole).
MAX_ERROR_CELL = 120
#: The columns a table shows for each kind of item: (header, field).
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "Workflow": (
        ("ID", "id"),
        ("NAME", "name"),
        ("VERSION", "version"),
        ("ENABLED", "enabled"),
        ("VALID", "validation_status"),
        ("UPDATED", "updated_at"),
    ),
    "Run": (
        ("ID", "id"),
        ("WORKFLOW", "workflow_id"),
        ("VERSION", "version"),
        ("STATUS", "status"),
        ("CREATED", "created_at"),
        ("DURATION_MS", "duration_ms"),
    ),
    "RunStep": (
        ("STEP", "node_id"),
        ("STATUS", "status"),
        ("ATTEMPTS", "attempts"),
        ("DURATION_MS", "duration_ms"),
        ("ERROR", "error"),
    ),
    "ApiKey": (("ID", "id"), ("NAME", "name"), ("ROLE", "role"), ("CREATED", "created_at")),
    "ApiKeySecret": (("ID", "id"), ("NAME", "name"), ("ROLE", "role"), ("KEY", "key")),
    "Secret": (("NAME", "name"), ("UPDATED", "updated_at")),
    "SecretDeleted": (("NAME", "name"), ("INVALIDATED", "invalidated")),
    "RunAccepted": (("RUN", "run_id"), ("STATUS", "status")),
    "CancelAccepted": (("RUN", "run_id"), ("STATUS", "status")),
    "EventAccepted": (("ID", "id"),),
    "ProblemItem": (("PATH", "path"), ("CODE", "code"), ("LINE", "line"), ("MESSAGE", "message")),
}


def render(value: Any, fmt: Format) -> str:
    """``value`` (a Struct, a page of them, a list) as text ending in a newline."""
    data = msgspec.to_builtins(value)
    if fmt == "json":
        return msgspec.json.encode(data).decode() + "\n"
    if fmt == "yaml":
        return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return table(value)


def table(value: Any) -> str:
    """Aligned columns of ``value``'s items (a page's, a list's, or ``value`` alone)."""
    items: Sequence[Any] = value if isinstance(value, list) else getattr(value, "items", [value])
    if not isinstance(items, list):
        items = [value]
    if not items:
        return "(none)\n"
    columns = COLUMNS.get(type(items[0]).__name__)
    if columns is None:  # a kind without columns: its scalar fields
        fields = msgspec.structs.fields(items[0]) if isinstance(items[0], msgspec.Struct) else ()
        columns = tuple((f.name.upper(), f.name) for f in fields if _scalar(items[0], f.name))
    rows = [[header for header, _ in columns]]
    rows += [[cell(getattr(item, name, "")) for _, name in columns] for item in items]
    text = _aligned(rows)
    error = getattr(value, "error", None)
    if isinstance(error, ErrorInfo) and not isinstance(value, list):
        text += f"error: {error.code}: {' '.join(error.message.split())}\n"
    steps = getattr(value, "steps", None)
    if isinstance(steps, list) and steps and not isinstance(value, list):
        text += "\n" + table(steps)
    return text


def _scalar(item: Any, name: str) -> bool:
    return isinstance(getattr(item, name), str | int | float | bool | datetime | None)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, ErrorInfo):
        return cell(f"{value.code}: {value.message}")[:MAX_ERROR_CELL]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value.utcoffset() is not None else str(value)
    if isinstance(value, float):
        return f"{value:.0f}"
    if isinstance(value, list):
        return str(len(value))
    return " ".join(str(value).split())


def _aligned(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines) + "\n"
