"""An HTTP answer as a step reads it: bodies read up to a bound, headers merged, bodies
decoded, and excerpts and messages with every secret redacted (:mod:`.http`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
import msgspec

from flowmesh_executor.instant import REDACTED, redaction_needles

__all__ = [
    "EXCERPT_CHARS",
    "body_excerpt",
    "decode_body",
    "read_at_most",
    "redact",
    "response_headers",
]

#: Characters of a response body an ``HttpStatus`` message may quote.
EXCERPT_CHARS = 200
_CHUNK = 64 * 1024


async def read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    """Read up to ``limit`` bytes of a body (fewer at its end), never more."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(min(_CHUNK, limit - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined with ``, ``."""
    merged: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def decode_body(raw: bytes, content_type: str, charset: str | None) -> Any:
    """JSON when the media type says so (text if it does not parse), else text."""
    if content_type == "application/json" or content_type.endswith("+json"):
        if not raw.strip():
            return None
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError:
            pass
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def body_excerpt(raw: bytes, secrets: Iterable[str], *, cut: bool) -> str:
    """At most :data:`EXCERPT_CHARS` printable characters of a body, secrets redacted.

    ``cut``: the body went on past ``raw``, so a secret may start at its end: a trailing
    piece of any secret is dropped too.
    """
    text = "".join(c if c.isprintable() else " " for c in raw.decode("utf-8", "replace"))
    needles = redaction_needles(secrets)
    text = _replace(text, needles).strip()
    if cut:
        text = _drop_partial_secret(text, needles)
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value, and its other forms, replaced (longest first)."""
    return _replace(text, redaction_needles(secrets))


def _replace(text: str, needles: list[str]) -> str:
    for needle in needles:
        text = text.replace(needle, REDACTED)
    return text


def _drop_partial_secret(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        for size in range(min(len(secret) - 1, len(text)), 0, -1):
            if text.endswith(secret[:size]):
                text = text[:-size]
                break
    return text
