"""Token buckets (pure): a bucket refills at ``rate`` per second up to ``burst``.

:class:`RateLimiter` keeps one bucket per key (tenant, credential, client address) and
forgets idle ones, so memory stays bounded. Time is an argument: tests use plain numbers.
Limits are per gateway process; with N gateways a tenant may get N times the rate.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import msgspec


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    retry_after: float = 0.0

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds for a ``Retry-After`` header (at least 1)."""
        return max(1, math.ceil(self.retry_after))


class TokenBucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.updated = now

    def take(self, now: float, cost: float = 1.0) -> Decision:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return Decision(allowed=True)
        wait = (cost - self.tokens) / self.rate if self.rate > 0 else math.inf
        return Decision(allowed=False, retry_after=wait)


class TenantLimits:
    """Each tenant's own limit (from the registry), remembered for ``ttl`` seconds."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[float, float, int]] = {}

    def get(self, tenant: str, now: float) -> tuple[float, int] | None:
        """(rate, burst), (0, 0) for "the default", or None when it must be asked again."""
        found = self._known.get(tenant)
        if found is None or found[0] <= now:
            return None
        return found[1], found[2]

    def put(self, tenant: str, rate: float, burst: int, now: float) -> None:
        if len(self._known) > 100_000:
            self._known.clear()
        self._known[tenant] = (now + self.ttl, rate, burst)


class RateLimiter:
    """Buckets by key, the least recently used forgotten beyond ``max_keys``."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(
        self, key: str, now: float, cost: float = 1.0, *, rate: float = 0.0, burst: int = 0
    ) -> Decision:
        """Take from ``key``'s bucket; ``rate``/``burst`` override the defaults for this key."""
        rate, burst = rate or self.rate, burst or self.burst
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, burst, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            if (bucket.rate, bucket.burst) != (rate, burst):
                bucket.rate, bucket.burst = rate, burst
                bucket.tokens = min(bucket.tokens, float(burst))
        return bucket.take(now, cost)

    def __len__(self) -> int:
        return len(self._buckets)
