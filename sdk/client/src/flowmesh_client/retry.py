"""When a request is asked again: a pure decision, no I/O, no clock.

Only a request that can be sent twice without doing twice what it does is retried: the
idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) and a POST that carries an idempotency
key (``execute``: the client makes one key per call and sends it on every attempt). Such a
request is asked again after a connection error or a 429, 502, 503 or 504, waiting what
``Retry-After`` says when the gateway said it, else a growing delay; never more than
``attempts`` times in all.
"""

from __future__ import annotations

import msgspec

RETRIED_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How often and how patiently a safe request is asked again."""

    attempts: int = 4  # in all, the first one included
    first_delay: float = 0.2  # seconds before the second attempt
    max_delay: float = 10.0  # no wait is longer, a Retry-After included

    def delay(
        self,
        *,
        method: str,
        keyed: bool,
        attempt: int,
        status: int | None,
        retry_after: float | None = None,
    ) -> float | None:
        """Seconds to wait before asking again after attempt number ``attempt`` (1, 2, ...)
        failed with ``status`` (None: the connection failed); None: do not ask again."""
        if not (method.upper() in IDEMPOTENT_METHODS or keyed):
            return None
        if status is not None and status not in RETRIED_STATUSES:
            return None
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            return min(self.max_delay, max(0.0, retry_after))
        return float(min(self.max_delay, self.first_delay * 2 ** (attempt - 1)))


NO_RETRIES = RetryPolicy(attempts=1)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by the gateway)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
