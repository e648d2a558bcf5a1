"""Token buckets (pure): a bucket refills at ``rate`` per second up to ``burst``.

:class:`RateLimiter` keeps one bucket per key (tenant, credential, client address) and
forgets idle ones, so memory stays bounded. Time is an argument: tests use plain numbers.

:func:`draw` is the bucket every gateway replica shares (held in a key-value store by
:mod:`flowmesh_gateway.quotas`): a replica draws a few whole tokens at once and spends them
locally, so the replicas together never admit more than the one bucket allows. The local
:class:`RateLimiter` is what a replica falls back on when the store cannot be reached.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import msgspec

from flowmesh_proto.errors import ErrorCode
from flowmesh_shared.errors import FlowmeshError


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    retry_after: float = 0.0

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds for a ``Retry-After`` header (at least 1)."""
        return max(1, math.ceil(self.retry_after))


class RateLimited(FlowmeshError):
    """Too many requests; try again later."""

    def __init__(self, decision: Decision, what: str) -> None:
        super().__init__(ErrorCode.RATE_LIMITED, f"rate limit of the {what} exceeded")
        self.headers = {"Retry-After": str(decision.retry_after_seconds)}


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


class SharedBucket(msgspec.Struct, frozen=True, array_like=True):
    """A token bucket as the replicas share it: ``tokens`` left at the wall-clock time ``at``."""

    tokens: float
    at: float


class Drawn(msgspec.Struct, frozen=True):
    """What :func:`draw` decided: the bucket to store, the whole tokens granted (0 or more),
    and, when none were, how long until one is there."""

    bucket: SharedBucket
    granted: int
    retry_after: float = 0.0


def draw(bucket: SharedBucket | None, *, rate: float, burst: int, now: float, want: int) -> Drawn:
    """Refill ``bucket`` (None: a full one) to ``now`` and take up to ``want`` whole tokens.

    A clock that went backwards refills nothing (replicas' clocks differ a little)."""
    if bucket is None:
        tokens = float(burst)
    else:
        elapsed = max(0.0, now - bucket.at)
        tokens = min(float(burst), bucket.tokens + elapsed * rate)
    at = max(now, bucket.at) if bucket is not None else now
    granted = min(max(1, want), int(tokens))
    if granted < 1:
        wait = (1.0 - tokens) / rate if rate > 0 else math.inf
        return Drawn(SharedBucket(tokens, at), 0, wait)
    return Drawn(SharedBucket(tokens - granted, at), granted)


class TenantQuota(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's own limits from the registry; 0 (or None) for "the gateway's default"."""

    rate: float = 0.0
    burst: int = 0
    max_holds: int | None = None
    max_queued_runs: int | None = None


DEFAULT_QUOTA = TenantQuota()


class TenantLimits:
    """Each tenant's own limits (from the registry), remembered for ``ttl`` seconds."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[float, TenantQuota]] = {}

    def get(self, tenant: str, now: float) -> TenantQuota | None:
        """The tenant's quota, or None when it must be asked again."""
        found = self._known.get(tenant)
        if found is None or found[0] <= now:
            return None
        return found[1]

    def put(self, tenant: str, quota: TenantQuota, now: float) -> None:
        if len(self._known) > 100_000:
            self._known.clear()
        self._known[tenant] = (now + self.ttl, quota)


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
