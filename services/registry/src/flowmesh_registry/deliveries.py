"""Run-event messages as the projection takes them: decoded and checked, or refused.

A message is refused (and the projection terminates it) when it is not a run event, when
its tenant or run id is not its subject's (the subject is what NATS permissions guard),
or when an id or number cannot be stored (not a UUID, out of range). Nothing here does
I/O: ``subject``, ``data`` and ``headers`` are the message's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from flowmesh_proto import headers as h
from flowmesh_proto.runs import RunQueued, run_event_decoder
from flowmesh_registry.batchfold import Delivery
from flowmesh_registry.problems import MAX_VERSION

#: Attempts are PostgreSQL integers too.
MAX_ATTEMPT = 1_000_000_000
#: Run ids as they are issued (lower case; a run id is a subject token and a key).
_RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Other ids PostgreSQL stores as ``uuid``.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Refused(ValueError):
    """The message cannot be projected; its text says why."""


def run_subject_parts(prefix: str, subject: str) -> tuple[str, str]:
    """``(tenant, run_id)`` of ``<prefix>.<tenant>.runs.<run_id>``."""
    head = f"{prefix}."
    parts = subject[len(head) :].split(".") if subject.startswith(head) else []
    if len(parts) != 3 or parts[1] != "runs":
        raise Refused(f"{subject!r} is not a run subject")
    return parts[0], parts[2]


def fence_of(headers: Mapping[str, str] | None) -> int | None:
    """The sequence the publisher fenced on, or None when it sent none (or garbage)."""
    value = (headers or {}).get(h.EXPECTED_LAST_SUBJECT_SEQUENCE)
    if value is None or not value.isdigit():
        return None
    return int(value)


def decode_delivery(
    prefix: str, subject: str, data: bytes, headers: Mapping[str, str] | None, seq: int
) -> tuple[str, Delivery]:
    """``(tenant, delivery)`` of one message; raises :class:`Refused`."""
    tenant, run_id = run_subject_parts(prefix, subject)
    try:
        event = run_event_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise Refused(f"not a run event: {exc}") from exc
    if event.tenant != tenant or event.run_id != run_id:
        raise Refused("the event's tenant or run id is not its subject's")
    if _RUN_ID.fullmatch(run_id) is None:
        raise Refused(f"run id {run_id!r} is not a UUID in canonical form")
    if _UUID.fullmatch(event.workflow_id) is None:
        raise Refused(f"workflow id {event.workflow_id!r} is not a UUID")
    if not 1 <= event.version <= MAX_VERSION:
        raise Refused(f"version {event.version} is out of range")
    if isinstance(event, RunQueued):
        if not 0 <= event.attempt <= MAX_ATTEMPT:
            raise Refused(f"attempt {event.attempt} is out of range")
        if event.parent_run_id is not None and _UUID.fullmatch(event.parent_run_id) is None:
            raise Refused(f"parent run id {event.parent_run_id!r} is not a UUID")
    return tenant, Delivery(seq=seq, previous=fence_of(headers), event=event)
