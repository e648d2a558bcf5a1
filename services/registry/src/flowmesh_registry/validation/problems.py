"""Collecting problems, each with a code and a JSON-ish path (``nodes[2].parameters.url``)."""

from __future__ import annotations

from typing import Any

import msgspec

from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_shared.expressions import member_path

#: The path of a problem with the whole document.
DOCUMENT = "$"


class Problems:
    """Every problem found so far; :meth:`sorted` gives them once each, by path."""

    def __init__(self) -> None:
        self._items: list[ProblemItem] = []

    def __len__(self) -> int:
        return len(self._items)

    def add(self, path: str, code: ErrorCode, message: str) -> None:
        self._items.append(ProblemItem(path=path or DOCUMENT, code=code.name, message=message))

    def sorted(self) -> list[ProblemItem]:
        unique = {(p.path, p.code, p.message): p for p in self._items}
        return [unique[key] for key in sorted(unique)]


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut short: messages quote user input but never all of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def member(path: str, key: Any) -> str:
    """``path`` followed by the member ``key`` (``.name``, or ``["odd key"]``)."""
    return path + member_path(key if isinstance(key, str) else repr(key))


def add_decode_error(
    problems: Problems, prefix: str, code: ErrorCode, error: msgspec.ValidationError
) -> None:
    """Report a msgspec error at ``prefix`` plus the path it names (``- at `$.parameters.url```)."""
    text = str(error)
    head, separator, tail = text.rpartition(" - at `$")
    suffix = ""
    if separator and tail.endswith("`"):
        text, suffix = head, tail[:-1]
    for marker, wording in (
        ("Object contains unknown field `", "unknown field"),
        ("Object missing required field `", "required field is missing"),
    ):
        if text.startswith(marker) and text.endswith("`"):
            suffix = member(suffix, text[len(marker) : -1])
            text = wording
    path = prefix + suffix if prefix else suffix.lstrip(".")
    problems.add(path, code, text if len(text) <= 200 else text[:197] + "...")
