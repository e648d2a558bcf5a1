"""A reference to one stored workflow version (what a deletion turned invalid)."""

from __future__ import annotations

import msgspec

__all__ = ["VersionRef"]


class VersionRef(msgspec.Struct, frozen=True, kw_only=True):
    workflow_id: str
    version: int
