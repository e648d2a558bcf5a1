"""One JSON encoder for every wire message, and decoders built once per type."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

encoder = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    return encoder.encode(value)


_decoders: dict[Any, Any] = {}


def decoder(kind: type[T]) -> msgspec.json.Decoder[T]:
    """The decoder for ``kind``, built on first use and reused."""
    found: msgspec.json.Decoder[T] | None = _decoders.get(kind)
    if found is None:
        found = _decoders[kind] = msgspec.json.Decoder(kind)
    return found


def decode(data: bytes, kind: type[T]) -> T:
    return decoder(kind).decode(data)
