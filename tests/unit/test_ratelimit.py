"""Token buckets, with time as a plain number."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmesh_gateway.ratelimit import (
    RateLimiter,
    SharedBucket,
    TenantLimits,
    TenantQuota,
    TokenBucket,
    draw,
)


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
    quota = TenantQuota(rate=5.0, burst=10, max_holds=3)
    known.put("t", quota, now=0.0)
    assert known.get("t", 9.9) == quota
    assert known.get("t", 10.0) is None


def test_a_shared_bucket_grants_whole_tokens_up_to_what_is_wanted() -> None:
    first = draw(None, rate=2.0, burst=5, now=100.0, want=3)
    assert first.granted == 3 and first.bucket == SharedBucket(2.0, 100.0)
    second = draw(first.bucket, rate=2.0, burst=5, now=100.0, want=3)
    assert second.granted == 2 and second.bucket.tokens == 0.0
    refused = draw(second.bucket, rate=2.0, burst=5, now=100.25, want=3)
    assert refused.granted == 0 and refused.retry_after == pytest.approx(0.25)
    assert draw(refused.bucket, rate=2.0, burst=5, now=100.5, want=3).granted == 1
    assert draw(second.bucket, rate=2.0, burst=5, now=1e6, want=9).granted == 5  # the burst


def test_a_shared_bucket_whose_clock_went_back_refills_nothing() -> None:
    bucket = SharedBucket(0.0, 100.0)
    assert draw(bucket, rate=1.0, burst=5, now=50.0, want=1).granted == 0
    assert draw(bucket, rate=1.0, burst=5, now=50.0, want=1).bucket.at == 100.0


@given(
    rate=st.floats(min_value=0.1, max_value=100),
    burst=st.integers(min_value=1, max_value=50),
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=2), st.integers(min_value=1, max_value=20)),
        max_size=60,
    ),
)
def test_draws_never_grant_more_than_the_bucket_allows(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    bucket, now, granted = None, 0.0, 0
    for pause, want in steps:
        now += pause
        drawn = draw(bucket, rate=rate, burst=burst, now=now, want=want)
        assert 0 <= drawn.granted <= want
        bucket, granted = drawn.bucket, granted + drawn.granted
    assert granted <= burst + rate * now + 1e-6
