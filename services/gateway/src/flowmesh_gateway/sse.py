"""Server-Sent Events of run events, the wire format (pure: no I/O, no clock).

Each stored run event (DESIGN sections 3 and 7) is one SSE event::

    id: <its JetStream stream sequence>
    event: <its kind>
    data: <its JSON>

One stream sequence is one SSE event: a ``steps`` batch (several step events published as
one message, DESIGN section 5) is one SSE event of kind ``steps`` whose data is the batch,
its ``events`` in order. Resuming after a batch's id resumes after the whole batch; a batch
is never split. A comment (``: keep-alive``) keeps proxies from closing a quiet stream.
An event the gateway computes rather than reads from the stream (a queued run's
``run.waiting``) has no ``id:`` (:func:`notice`): there is nothing to resume after.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

from flowmesh_proto.runs import TERMINAL_RUN_KINDS

HEARTBEAT = b": keep-alive\n\n"
#: The largest id a client may resume after (a stream sequence is a uint64; JetStream's
#: own API takes no more than this).
MAX_EVENT_ID = 2**63 - 1

_DIGITS = re.compile(r"[0-9]{1,19}")
#: What an ``event:`` field may carry: a kind of today or of a newer executor, but never a
#: line break or anything else that could forge another SSE field.
_KIND = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


class Envelope(msgspec.Struct):
    """What the stream needs to know of an event: its kind and workflow."""

    kind: str = ""
    workflow_id: str = ""


_envelope_decoder = msgspec.json.Decoder(Envelope)


class Rendered(msgspec.Struct, frozen=True):
    """SSE events ready to write: ``events`` of them in ``chunk``; ``ended`` after the
    run's terminal event (nothing after it is rendered); ``skipped`` messages that are not
    run events or belong to another workflow than the one asked for."""

    chunk: bytes
    events: int
    ended: bool
    skipped: int


def parse_event_id(raw: str | None) -> int | None:
    """The stream sequence a client has seen, from ``Last-Event-ID`` or ``last_event_id``.

    None when not given (or empty, which EventSource never sends); ValueError for anything
    but a decimal number from 0 to :data:`MAX_EVENT_ID`.
    """
    if raw is None or raw == "":
        return None
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_EVENT_ID:
        raise ValueError(f"must be a stream sequence: an integer from 0 to {MAX_EVENT_ID}")
    return int(raw)


def envelope(data: bytes) -> Envelope | None:
    """The kind and workflow of a run event; None for a message that is not one."""
    try:
        found = _envelope_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None
    return found if _KIND.fullmatch(found.kind) else None


def frame(seq: int, kind: str, data: bytes) -> bytes:
    """One SSE event. JSON with line breaks (a pretty-printed message) is sent as several
    ``data:`` lines, which the client joins with ``\\n``: the same JSON value."""
    return b"id: %d\nevent: %s\n%s\n" % (seq, kind.encode(), _data(data))


def notice(kind: str, data: bytes) -> bytes:
    """An SSE event with no ``id:``: computed when it is sent, not stored, so nothing to
    resume after (a client's ``Last-Event-ID`` stays its last stored event's)."""
    return b"event: %s\n%s\n" % (kind.encode(), _data(data))


def _data(data: bytes) -> bytes:
    lines = _LINE_BREAK.split(data) if b"\n" in data or b"\r" in data else (data,)
    return b"".join(b"data: " + line + b"\n" for line in lines)


def render(
    messages: Iterable[tuple[int, bytes]], *, workflow_id: str | None, end_at_terminal: bool
) -> Rendered:
    """The SSE events of ``messages`` (stream sequence, data), in their order."""
    parts: list[bytes] = []
    skipped = 0
    for seq, data in messages:
        found = envelope(data)
        if found is None or (workflow_id is not None and found.workflow_id != workflow_id):
            skipped += 1
            continue
        parts.append(frame(seq, found.kind, data))
        if end_at_terminal and found.kind in TERMINAL_RUN_KINDS:
            return Rendered(b"".join(parts), len(parts), True, skipped)
    return Rendered(b"".join(parts), len(parts), False, skipped)
