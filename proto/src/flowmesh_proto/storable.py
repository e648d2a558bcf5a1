"""What PostgreSQL can keep of a JSON value: the one check every entry point makes.

A run's input, an event's data, a webhook's body and a definition end up in history or
the registry, in PostgreSQL ``text`` and ``jsonb``. Some JSON values cannot be kept there
as sent, and were accepted, then lost (the run's history showed ``input: null``) or
answered 500. Each is refused at its path instead (422), by :func:`unstorable`:

- U+0000 in a string or a key: neither ``text`` nor ``jsonb`` holds it (``\\u0000`` is the
  only way JSON can write it);
- a lone surrogate (U+D800..U+DFFF) in a string or a key: it is no Unicode character, UTF-8
  cannot encode it (JSON bodies never decode to one; a YAML escape can make one);
- a float that is not finite (NaN, infinity: JSON has none; YAML's ``.inf`` and ``.nan``
  would be written as ``null``);
- anything that is not a JSON value (bytes, a set, a date: YAML tags can make them).

Numbers are otherwise kept: an integer has at most 4,300 digits once decoded (Python's
and msgspec's bound), far below what ``numeric`` holds; a float is a double.

PURE: no I/O. The walk is iterative, so no nesting depth makes it fail.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import msgspec

__all__ = ["Unstorable", "json_path", "unstorable", "unstorable_json"]

#: Characters PostgreSQL's text cannot hold, or UTF-8 cannot encode.
_REFUSED = re.compile("[\x00\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: How JSON writes U+0000 (a raw NUL byte in a string is not JSON at all).
_ESCAPED_NUL = b"\\u0000"

Part = str | int


class Unstorable(msgspec.Struct, frozen=True, kw_only=True):
    """Where a value holds what cannot be stored (``input.a[0]``), and what it is."""

    path: str
    reason: str


def json_path(parts: tuple[Part, ...] | list[Part], root: str = "") -> str:
    """``("a", 0, "b c")`` under ``input`` as ``input.a[0]["b c"]``: the problem paths of
    the API. With no root, ``a[0]["b c"]``; no root and no parts is ``$`` (the whole body)."""
    text = root
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"  # ASCII: a lone surrogate too
    return text or "$"


def unstorable(value: Any, root: str = "") -> Unstorable | None:
    """The first place in ``value`` (a decoded JSON or YAML document) that PostgreSQL's
    ``jsonb`` could not keep as it is, with why; None when all of it can be kept."""
    # Each item's place is a link to its parent's: linear whatever the depth.
    stack: list[tuple[Any, _Place]] = [(value, None)]
    while stack:
        item, place = stack.pop()
        reason = _scalar_problem(item)
        if reason is not None:
            return Unstorable(path=json_path(_parts(place), root), reason=reason)
        children: list[tuple[Any, _Place]] = []
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    reason = _text_problem(key, "key")
                elif key is None or isinstance(key, bool | int | float):
                    reason = _scalar_problem(key)  # YAML keys: written as text by JSON
                else:
                    reason = f"a key of type {type(key).__name__} is not a JSON value"
                name = key if isinstance(key, str) else str(key)
                if reason is not None:
                    return Unstorable(path=json_path(_parts((place, name)), root), reason=reason)
                children.append((child, (place, name)))
        elif isinstance(item, list):
            children = [(child, (place, index)) for index, child in enumerate(item)]
        stack.extend(reversed(children))
    return None


_Place = tuple[Any, Part] | None


def _parts(place: _Place) -> list[Part]:
    parts: list[Part] = []
    while place is not None:
        place, part = place
        parts.append(part)
    return parts[::-1]


def unstorable_json(data: bytes, root: str = "") -> Unstorable | None:
    """:func:`unstorable` of a JSON document that has decoded well: only a ``\\u0000``
    escape can make one unstorable, so a document without one is not walked at all."""
    if _ESCAPED_NUL not in data:
        return None
    try:
        return unstorable(msgspec.json.decode(data), root)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None  # not JSON: its decoder says so


def _scalar_problem(item: Any) -> str | None:
    if isinstance(item, str):
        return _text_problem(item, "string")
    if isinstance(item, float):
        return None if math.isfinite(item) else f"{item} is not a JSON number"
    if item is None or isinstance(item, bool | int | dict | list):
        return None
    return f"a value of type {type(item).__name__} is not a JSON value"


def _text_problem(text: str, what: str) -> str | None:
    found = _REFUSED.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return f"a {what} holds U+0000, which PostgreSQL cannot store"
    return f"a {what} holds a lone surrogate (U+{ord(char):04X}), which is not a character"
