"""Retry delays: fixed, linear or exponential backoff, capped, with deterministic jitter.

Pure: the jitter is drawn from a hash of (run id, node id, attempt), never from ``random``,
so replaying a run decides the same delays.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from flowmesh_proto.workflow import RetryPolicy

__all__ = ["NOT_RETRIED", "NO_RETRY", "jitter_fraction", "retry_delay_ms"]

NO_RETRY = RetryPolicy(max_attempts=1)
#: Step error classes no retry could mend (the definition asks for what is never allowed):
#: the attempt is the step's last whatever its policy says.
NOT_RETRIED: frozenset[str] = frozenset(
    {"ConnectorRefused", "ActionNotFound", "ActionInputInvalid", "ActionTemplateError"}
)


def retry_delay_ms(policy: RetryPolicy, failed_attempt: int, *, run_id: str, node_id: str) -> int:
    """Whole milliseconds to wait after attempt ``failed_attempt`` (1-based) failed.

    The base delay is ``initial`` (fixed), ``initial * n`` (linear) or ``initial * 2**(n-1)``
    (exponential), capped at ``max``. With jitter it is scaled by a factor in [0.5, 1)
    ("equal jitter"): never longer than the base, never shorter than half of it.
    """
    initial = _ms(policy.initial)
    cap = _ms(policy.max)
    n = max(failed_attempt, 1)
    match policy.backoff:
        case "fixed":
            base = initial
        case "linear":
            base = initial * n
        case "exponential":
            base = initial * 2 ** min(n - 1, 62)
    base = min(base, cap) if cap > 0 else base
    if not policy.jitter:
        return base
    return int(base * (0.5 + 0.5 * jitter_fraction(run_id, node_id, n)))


def jitter_fraction(run_id: str, node_id: str, attempt: int) -> float:
    """A number in [0, 1) fixed by (run id, node id, attempt)."""
    digest = hashlib.sha256(f"{run_id}:{node_id}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _ms(value: timedelta) -> int:
    return max(0, round(value.total_seconds() * 1000))
