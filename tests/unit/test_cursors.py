"""Cursors: opaque, bound to their sort order, tamper-evident enough to never mislead."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmesh_registry.cursors import CursorError, decode_cursor, encode_cursor

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=40)


@given(
    sort=st.sampled_from(["name", "-name", "-updated_at"]), key=st.lists(json_scalars, max_size=3)
)
def test_round_trip(sort: str, key: list[object]) -> None:
    assert decode_cursor(encode_cursor(sort, key), sort) == key


def test_cursor_of_another_sort_is_refused() -> None:
    cursor = encode_cursor("name", ["a", "b"])
    with pytest.raises(CursorError):
        decode_cursor(cursor, "-name")


@pytest.mark.parametrize(
    "garbage",
    ["", "!!!", "e30", "W10", "x" * 600, "WyJuYW1lIl0", "WyJuYW1lIiwgMV0", "\u00e9\u00e9"],
)
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(CursorError):
        decode_cursor(garbage, "name")


@given(st.text(max_size=80))
def test_decode_never_raises_anything_else(text: str) -> None:
    with contextlib.suppress(CursorError):
        decode_cursor(text, "name")
