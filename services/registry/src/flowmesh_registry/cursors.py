"""Opaque keyset-pagination cursors (pure).

A cursor names the sort it belongs to and the sort key of the last item returned; it is
URL-safe base64 of a small JSON array. A cursor from another sort, a tampered one, or
garbage decodes to :class:`CursorError`, never to a wrong page.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

_MAX_CURSOR_LENGTH = 512


class CursorError(ValueError):
    """The cursor is not one this service issued for this listing."""


def encode_cursor(sort: str, key: list[Any]) -> str:
    payload = msgspec.json.encode([sort, key])
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def decode_cursor(cursor: str, sort: str) -> list[Any]:
    """The key stored in ``cursor``, checked to belong to ``sort``."""
    if not cursor or len(cursor) > _MAX_CURSOR_LENGTH:
        raise CursorError("cursor is empty or too long")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = base64.urlsafe_b64decode(padded.encode("ascii"))
        value = msgspec.json.decode(payload)
    except (binascii.Error, UnicodeError, ValueError, msgspec.DecodeError) as exc:
        raise CursorError("cursor is not valid") from exc
    if (
        not isinstance(value, list)
        or len(value) != 2
        or value[0] != sort
        or not isinstance(value[1], list)
    ):
        raise CursorError("cursor does not belong to this listing or sort order")
    key: list[Any] = value[1]
    return key
