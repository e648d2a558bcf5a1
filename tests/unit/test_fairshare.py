"""Weighted turns among tenants (the executor's fair intake, a pure scheduler)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from flowmesh_executor.fairshare import FairShare


def take(share: FairShare, slots: int) -> Counter[str]:
    """Give ``slots`` slots one at a time (a busy executor: one slot frees at a time)."""
    got: Counter[str] = Counter()
    for _ in range(slots):
        got.update(share.share(1))
    return got


def test_one_tenant_takes_all_the_room_up_to_the_most_per_fetch() -> None:
    share = FairShare()
    share.ready("a")
    assert share.share(256, most=64) == {"a": 64}
    assert share.share(10) == {"a": 10}


def test_nothing_is_given_when_nobody_waits_or_there_is_no_room() -> None:
    share = FairShare()
    assert share.share(5) == {}
    share.ready("a")
    assert share.share(0) == {}


def test_a_newcomer_gets_the_next_slot_however_long_the_backlog_before_it() -> None:
    share = FairShare()
    share.ready("flood")
    take(share, 10_000)  # a tenant with a backlog has had every slot for a long time
    share.ready("b")
    assert share.share(1) == {"b": 1}
    assert share.share(1) == {"flood": 1}


def test_equal_weights_alternate() -> None:
    share = FairShare()
    share.ready("a")
    share.ready("b")
    assert take(share, 100) == {"a": 50, "b": 50}
    assert share.share(10) == {"a": 5, "b": 5}


def test_weights_share_in_proportion() -> None:
    share = FairShare()
    share.weigh("a", 3)
    share.ready("a")
    share.ready("b")
    got = take(share, 400)
    assert got == {"a": 300, "b": 100}


def test_busy_tenants_are_skipped_and_most_caps_each() -> None:
    share = FairShare()
    for tenant in "abc":
        share.ready(tenant)
    assert share.share(10, busy={"a"}, most=2) == {"b": 2, "c": 2}


def test_idling_earns_no_credit() -> None:
    share = FairShare()
    share.ready("a")
    share.ready("b")
    take(share, 10)
    share.idle("b")
    take(share, 1000)  # a alone for a long time
    share.ready("b")  # b comes back at the virtual time, not 1000 slots ahead
    assert take(share, 10) == {"a": 5, "b": 5}


def test_a_refund_gives_back_slots_not_filled() -> None:
    share = FairShare()
    share.ready("a")
    share.ready("b")
    assert share.share(64) == {"a": 32, "b": 32}
    share.refund("a", 31)  # a had only one request; b used all 32
    share.idle("a")
    share.ready("a")  # a's next requests come before b's: a has had 1 slot, b 32
    assert take(share, 31) == {"a": 31}
    assert take(share, 2) == {"a": 1, "b": 1}


def test_idle_and_ready_are_idempotent() -> None:
    share = FairShare()
    share.idle("nobody")
    share.ready("a")
    share.ready("a")
    assert share.waiting == frozenset({"a"})
    share.idle("a")
    share.idle("a")
    assert share.waiting == frozenset()


def test_memory_is_bounded_by_forgetting_tenants_behind_the_virtual_time() -> None:
    share = FairShare()
    for n in range(20_050):
        tenant = f"t{n}"
        share.ready(tenant)
        share.share(1)
        share.idle(tenant)
    assert len(share._passes) <= 10_001


@given(
    weights=st.lists(st.integers(min_value=1, max_value=10), min_size=2, max_size=6),
    rounds=st.integers(min_value=50, max_value=400),
)
def test_busy_tenants_get_slots_in_proportion_to_their_weights(
    weights: list[int], rounds: int
) -> None:
    share = FairShare()
    for n, weight in enumerate(weights):
        share.weigh(f"t{n}", weight)
        share.ready(f"t{n}")
    slots = rounds * sum(weights)
    got = take(share, slots)
    for n, weight in enumerate(weights):
        assert abs(got[f"t{n}"] - rounds * weight) <= 1
