"""Identifiers that become subject tokens, paths or keys, and their validation.

A tenant id becomes a NATS subject token, so it is checked wherever it enters: a tenant
called ``a.>`` would be a breach.
"""

from __future__ import annotations

import re
import uuid

from uuid_utils.compat import uuid7

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
RESERVED_TENANT_IDS = frozenset({"rpc", "sys", "admin"})
NODE_ID_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
SECRET_NAME_PATTERN = r"^[A-Z][A-Z0-9_]{0,63}$"  # noqa: S105 - a pattern, not a secret
TRIGGER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
EVENT_TYPE_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
#: An event id: printable ASCII without spaces (it becomes part of a NATS header).
EVENT_ID_PATTERN = r"^[!-~]+$"
#: The longest event id (it is a CloudEvents ``id``, chosen by the publisher).
MAX_EVENT_ID_LENGTH = 200

_TENANT_RE = re.compile(TENANT_ID_PATTERN)
_NODE_RE = re.compile(NODE_ID_PATTERN)
_SECRET_RE = re.compile(SECRET_NAME_PATTERN)
_TRIGGER_RE = re.compile(TRIGGER_ID_PATTERN)
_EVENT_TYPE_RE = re.compile(EVENT_TYPE_PATTERN)
_QUEUE_RE = re.compile(QUEUE_NAME_PATTERN)
_EVENT_ID_RE = re.compile(EVENT_ID_PATTERN.removeprefix("^").removesuffix("$"))


def tenant_id_problem(value: object) -> str | None:
    """Why ``value`` is not a usable tenant id, or None when it is."""
    if not isinstance(value, str):
        return "tenant id must be a string"
    if not _TENANT_RE.fullmatch(value):
        return f"tenant id must match {TENANT_ID_PATTERN}"
    if value in RESERVED_TENANT_IDS:
        return f"tenant id {value!r} is reserved"
    return None


def is_tenant_id(value: object) -> bool:
    return tenant_id_problem(value) is None


def is_node_id(value: object) -> bool:
    return isinstance(value, str) and _NODE_RE.fullmatch(value) is not None


def is_secret_name(value: object) -> bool:
    return isinstance(value, str) and _SECRET_RE.fullmatch(value) is not None


def is_trigger_id(value: object) -> bool:
    return isinstance(value, str) and _TRIGGER_RE.fullmatch(value) is not None


def is_event_type(value: object) -> bool:
    """Event types are subject tokens joined by dots (``order.created``)."""
    return isinstance(value, str) and len(value) <= 200 and bool(_EVENT_TYPE_RE.fullmatch(value))


def is_event_id(value: object) -> bool:
    """1..200 printable ASCII characters without spaces (no trailing newline either)."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_EVENT_ID_LENGTH
        and _EVENT_ID_RE.fullmatch(value) is not None
    )


def is_queue_name(value: object) -> bool:
    return isinstance(value, str) and _QUEUE_RE.fullmatch(value) is not None


def parse_uuid(value: object) -> uuid.UUID | None:
    """The UUID ``value`` spells, or None (never raises)."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def new_run_id() -> uuid.UUID:
    """Run ids are UUIDv7: time-ordered, so they sort and index well."""
    return uuid7()


def new_id() -> uuid.UUID:
    """Ids of other resources (workflows, keys) are UUIDv7 too."""
    return uuid7()
