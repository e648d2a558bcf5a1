"""Token buckets, with time as a plain number."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmesh_gateway.ratelimit import RateLimiter, TenantLimits, TokenBucket


def test_burst_then_refill() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0).allowed for _ in range(4)] == [True, True, True, False]
    refused = bucket.take(0.0)
    assert refused.retry_after == pytest.approx(0.5) and refused.retry_after_seconds == 1
    assert bucket.take(0.5).allowed
    assert not bucket.take(0.5).allowed
    assert [bucket.take(100.0).allowed for _ in range(4)] == [True, True, True, False]


def test_time_going_backwards_grants_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0).allowed
    assert not bucket.take(5.0).allowed


@given(
    rate=st.floats(min_value=0.1, max_value=1000),
    burst=st.integers(min_value=1, max_value=100),
    gaps=st.lists(st.floats(min_value=0, max_value=2), max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket, now, allowed = TokenBucket(rate, burst, 0.0), 0.0, 0
    for gap in gaps:
        now += gap
        allowed += bucket.take(now).allowed
    assert allowed <= burst + rate * now + 1e-6


def test_limiter_keys_and_overrides() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_keys=2)
    assert limiter.take("a", 0.0).allowed and not limiter.take("a", 0.0).allowed
    assert limiter.take("b", 0.0).allowed
    assert limiter.take("c", 0.0).allowed and len(limiter) == 2  # "a" was forgotten
    assert [limiter.take("d", 0.0, rate=1.0, burst=3).allowed for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert not limiter.take("d", 0.0, rate=1.0, burst=1).allowed  # shrunk, still empty
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate=0, burst=1)


def test_tenant_limits_expire() -> None:
    known = TenantLimits(ttl=10.0)
    assert known.get("t", 0.0) is None
    known.put("t", 5.0, 10, now=0.0)
    assert known.get("t", 9.9) == (5.0, 10)
    assert known.get("t", 10.0) is None
