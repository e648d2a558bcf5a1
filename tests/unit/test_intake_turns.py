"""The intake's bookkeeping of turns around fetches (:class:`FairIntake`, no server)."""

from __future__ import annotations

import time
from typing import Any, cast

from flowmesh_executor.intake import FETCH_PATIENCE, FairIntake, _Fetch


def _intake() -> FairIntake:
    nothing = cast(Any, None)
    return FairIntake(nothing, nothing, "S", nothing, nothing, nothing, nothing, nothing, lambda: 0)


def test_a_lost_fetch_earns_its_tenant_and_newcomers_no_turns_over_those_who_kept_waiting() -> None:
    """a's fetch of 32 is lost; b has every slot meanwhile (1000, a slot at a time). When
    the lost fetch is forgotten, b's next turn comes within a couple of slots, not after
    a and a newcomer c have each had as many as b had."""
    intake = _intake()
    turns = intake.turns
    turns.ready("a")
    turns.ready("b")
    assert turns.share(64, most=64) == {"a": 32, "b": 32}
    intake._fetches["a"] = _Fetch(asked=32, sent_at=time.monotonic() - 3 * FETCH_PATIENCE)
    for _ in range(1000):
        assert turns.share(1, busy=intake._fetches) == {"b": 1}
    intake._forget_lost_fetches()
    assert "a" not in intake._fetches and "a" in turns.waiting
    turns.ready("c")
    before_b = 0
    while "b" not in turns.share(1):
        before_b += 1
    assert before_b <= 2
