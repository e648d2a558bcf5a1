"""Folding a batch of run events onto the stored runs. Pure: no I/O, no clock.

The projection hands over, for one run, what is stored (its view and ``last_seq``, the
stream sequence of the last event folded into it) and the batch's deliveries of that
run's events, each with its stream sequence and the sequence it was fenced on
(``Nats-Expected-Last-Subject-Sequence``: the run's previous event, DESIGN section 5).

- An event at or below ``last_seq`` changes nothing: a redelivery or a replay.
- An event whose fence is above ``last_seq`` comes after events not yet folded (a registry
  restarted while holding them, or another replica holds them): :func:`find_gap` says
  which sequences are missing, and the shell reads them from the stream first.
- The view is :class:`flowmesh_shared.runview.RunFold`, resumed from the stored view: the
  one fold of run events, shared with whoever else shows runs. It keeps no ``waiting``
  (why a queued run waits, a ``run.waiting`` says so): that is a queued run's live state,
  which the gateway reads from the run's events and the executors' intake when asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec

from flowmesh_proto.runs import Run, RunEvent, RunStep
from flowmesh_shared.runview import RunFold


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One run event as the stream delivered it."""

    seq: int
    #: The subject sequence the publisher fenced on (the run's previous event); None when
    #: it sent no fence, and then stream order is trusted.
    previous: int | None
    event: RunEvent


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """A run as the projection stored it."""

    view: Run
    last_seq: int
    counted: bool = False


class Gap(msgspec.Struct, frozen=True, kw_only=True):
    """Events of the run with a sequence in ``(after, before)`` are missing from the batch."""

    after: int
    before: int


class Projected(msgspec.Struct, frozen=True, kw_only=True):
    """A run's new view; ``steps`` holds the steps that changed, with their positions."""

    view: Run
    last_seq: int
    steps: list[tuple[int, RunStep]]


def in_order(deliveries: Iterable[Delivery]) -> list[Delivery]:
    """The deliveries by stream sequence, each sequence once (redeliveries dropped)."""
    unique = {delivery.seq: delivery for delivery in deliveries}
    return [unique[seq] for seq in sorted(unique)]


def find_gap(last_seq: int, deliveries: list[Delivery]) -> Gap | None:
    """The first stretch of the run's events missing before ``deliveries`` (in order) can
    be folded onto a run stored at ``last_seq``; None when nothing is missing."""
    last = last_seq
    for delivery in deliveries:
        if delivery.seq <= last:
            continue
        if delivery.previous is not None and delivery.previous > last:
            return Gap(after=last, before=delivery.seq)
        last = delivery.seq
    return None


def fold_run(
    stored: Stored | None, deliveries: list[Delivery], *, keep_after: datetime
) -> Projected | None:
    """The run after ``deliveries`` (in order), or None when they change nothing: all
    already folded, or a run not stored yet that began before ``keep_after`` (retention
    would delete it; a replay must not bring it back)."""
    last = stored.last_seq if stored is not None else 0
    fresh = [delivery for delivery in deliveries if delivery.seq > last]
    if not fresh:
        return None
    fold = RunFold.resume(stored.view) if stored is not None else RunFold()
    for delivery in fresh:
        fold.apply(delivery.event)
    view = msgspec.structs.replace(fold.view(), waiting=None)
    if stored is None and view.created_at < keep_after:
        return None
    before = {step.node_id: step for step in stored.view.steps} if stored is not None else {}
    changed = [
        (position, step)
        for position, step in enumerate(view.steps)
        if before.get(step.node_id) != step
    ]
    return Projected(view=view, last_seq=fresh[-1].seq, steps=changed)
