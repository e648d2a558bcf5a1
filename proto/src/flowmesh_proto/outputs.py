"""What a step outputs, where a node type's output has a shape of its own.

The executor builds these (``nodes/http.py``, ``nodes/publish.py``) and the catalog
(:mod:`flowmesh_proto.entries`) publishes their JSON Schemas, so the two cannot drift. The
output of every other node type is a plain value: null (``noop``, ``delay``), a boolean
(``condition``), a case name (``switch``), a list (``map``), an event
(:class:`~flowmesh_proto.events.EventEnvelope`, ``wait_for_event``) or anything
(``transform``, ``workflow``, ``task``).
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["HttpOutput", "PublishOutput"]


class HttpOutput(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of an ``http`` node: its status, its headers (names lower-cased, a
    repeated header's values joined with ``, ``) and its body (JSON when the media type
    says so and it parses, else text; null when empty)."""

    status: int
    headers: dict[str, str]
    body: Any


class PublishOutput(msgspec.Struct, frozen=True, kw_only=True):
    """What a ``publish`` node outputs: the id of the event it published."""

    event_id: str
