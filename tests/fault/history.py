"""A run's events as stored (stream sequence and ``Nats-Msg-Id`` included), and what makes
them one coherent history.

An executor publishes each event with ``Nats-Msg-Id: <writer token>:<expected last
sequence>`` (:class:`flowmesh_executor.writer.RunWriter`), so the stored log says which
writer published what, and on top of which event.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any

from flowmesh_executor.state import RunState, fold
from flowmesh_proto import headers as h
from flowmesh_proto.runs import (
    TERMINAL_RUN_KINDS,
    RunEvent,
    RunQueued,
    RunStarted,
    StepBatch,
    StepEvent,
    StepStarted,
    StepSucceeded,
    run_event_decoder,
)
from flowmesh_proto.subjects import StreamNames, Subjects


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    msg_id: str
    event: RunEvent

    @property
    def kind(self) -> str:
        tag: str = self.event.__struct_config__.tag  # type: ignore[assignment]
        return tag

    @property
    def writer(self) -> str:
        return self.msg_id.rpartition(":")[0]

    @property
    def on_top_of(self) -> str:
        """The sequence the writer expected to be the last one (what it was fenced on)."""
        return self.msg_id.rpartition(":")[2]


async def read_history(
    js: Any, subjects: Subjects, streams: StreamNames, tenant: str, run_id: str
) -> list[Entry]:
    subject = subjects.run_events(tenant, run_id)
    sub = await js.subscribe(subject, stream=streams.run_events, ordered_consumer=True)
    entries: list[Entry] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except TimeoutError:
                return entries
            msg_id = (msg.headers or {}).get(h.MSG_ID, "")
            event = run_event_decoder.decode(msg.data)
            entries.append(Entry(msg.metadata.sequence.stream, msg_id, event))
            if msg.metadata.num_pending == 0:
                return entries
    finally:
        await sub.unsubscribe()


def steps_of(history: list[Entry]) -> list[tuple[int, RunEvent | StepEvent]]:
    """Every event, a batch's one by one, with the sequence of the message holding it."""
    flat: list[tuple[int, RunEvent | StepEvent]] = []
    for entry in history:
        inner = entry.event.events if isinstance(entry.event, StepBatch) else [entry.event]
        flat.extend((entry.seq, event) for event in inner)
    return flat


def writers(history: list[Entry]) -> list[str]:
    """The executor-side writers in the order they wrote, one item per uninterrupted stretch."""
    segments: list[str] = []
    for entry in history[1:]:
        if not segments or segments[-1] != entry.writer:
            segments.append(entry.writer)
    return segments


def assert_coherent(history: list[Entry]) -> RunState:
    """Fail unless ``history`` is one run told once, and return its folded state.

    Coherent means: it starts with the one ``run.queued``; sequences only grow; every later
    event was published on top of the event just before it (the fence held); a writer that
    was overtaken never wrote again; ``run.started`` once, before any step; no attempt of a
    node started twice (a resumed step runs again under its recorded attempt, without a new
    ``step.started``); a node succeeds at most once, in the attempt that was started; one
    terminal event, the last.
    """
    assert history, "the run has no events"
    events = [entry.event for entry in history]
    assert isinstance(events[0], RunQueued), history[0]
    assert sum(isinstance(e, RunQueued) for e in events) == 1, _show(history)
    seqs = [entry.seq for entry in history]
    assert seqs == sorted(set(seqs)), f"sequences do not grow: {seqs}"
    for before, entry in itertools.pairwise(history):
        assert entry.on_top_of == str(before.seq), (
            f"event {entry.seq} ({entry.kind}) was published expecting {entry.on_top_of}, "
            f"but {before.seq} is the event before it: {_show(history)}"
        )
    segments = writers(history)
    assert len(segments) == len(set(segments)), f"a writer wrote again after another: {segments}"
    started = [i for i, e in enumerate(events) if isinstance(e, RunStarted)]
    assert started == [1], f"run.started must be the second event, once: {_show(history)}"
    terminal = [i for i, entry in enumerate(history) if entry.kind in TERMINAL_RUN_KINDS]
    assert terminal == [len(history) - 1], f"one terminal event, the last: {_show(history)}"
    _assert_steps_coherent(history)
    return fold(events)


def _assert_steps_coherent(history: list[Entry]) -> None:
    started: Counter[tuple[str, int]] = Counter()
    running: dict[str, int] = {}
    succeeded: set[str] = set()
    for seq, event in steps_of(history):
        if isinstance(event, StepStarted):
            started[event.node_id, event.attempt] += 1
            assert started[event.node_id, event.attempt] == 1, (
                f"{event.node_id} attempt {event.attempt} started twice (at {seq})"
            )
            running[event.node_id] = event.attempt
        elif isinstance(event, StepSucceeded):
            assert event.node_id not in succeeded, f"{event.node_id} succeeded twice (at {seq})"
            succeeded.add(event.node_id)
            attempt = running.pop(event.node_id, None)
            assert attempt in (None, event.attempt), (
                f"{event.node_id} succeeded in attempt {event.attempt}, {attempt} was running"
            )


def _show(history: list[Entry]) -> str:
    return "; ".join(f"{entry.seq} {entry.kind} by {entry.writer}" for entry in history)
