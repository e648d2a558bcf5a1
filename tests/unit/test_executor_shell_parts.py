"""Pure parts of the executor's shell: child run ids, secret references, parameters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from flowmesh_executor.children import child_run_id
from flowmesh_executor.concurrency import slot_key
from flowmesh_executor.nodes.base import StepError
from flowmesh_executor.nodes.params import duration, moment, text
from flowmesh_executor.references import secret_names
from flowmesh_proto.workflow import definition_from_builtins

STARTED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_child_run_ids_are_uuid7_and_fixed_by_their_inputs() -> None:
    first = child_run_id("parent", "call", 1, STARTED)
    parsed = uuid.UUID(first)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert first == child_run_id("parent", "call", 1, STARTED)
    assert first != child_run_id("parent", "call", 2, STARTED)
    assert first != child_run_id("parent", "other", 1, STARTED)
    assert first != child_run_id("parent2", "call", 1, STARTED)
    later = child_run_id("parent", "call", 1, STARTED + timedelta(seconds=1))
    assert later > first  # time-ordered like every run id
    millis = int.from_bytes(parsed.bytes[:6], "big")
    assert millis == int(STARTED.timestamp() * 1000)


def test_secret_names_come_from_the_http_requests_only() -> None:
    definition = definition_from_builtins(
        {
            "name": "s",
            "nodes": [
                {
                    "id": "call",
                    "type": "http",
                    "parameters": {
                        "url": "https://x.example/{{ secrets.PATH }}",
                        "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
                    },
                },
                {
                    "id": "check",
                    "type": "condition",
                    "parameters": {"expression": "secrets.FLAG == 'y'"},
                },
            ],
            "edges": [{"from": "call", "to": "check"}],
        }
    )
    assert secret_names(definition) == {"PATH", "TOKEN"}  # FLAG: never resolved there
    assert (
        secret_names(
            definition_from_builtins({"name": "n", "nodes": [{"id": "a", "type": "noop"}]})
        )
        == set()
    )


def test_slot_keys_hash_the_key_value() -> None:
    assert slot_key("t", "w", "c1") == slot_key("t", "w", "c1")
    assert slot_key("t", "w", "c1") != slot_key("t", "w", "c2")
    assert slot_key("t", "w", "a.b>*").startswith("t.w.")
    assert "." not in slot_key("t", "w", "a.b>*").removeprefix("t.w.")


@pytest.mark.parametrize(
    ("given", "seconds"), [("PT1.5S", 1.5), ("PT2M", 120), (3, 3), (0.25, 0.25)]
)
def test_durations(given: object, seconds: float) -> None:
    assert duration(given, "d").total_seconds() == seconds


@pytest.mark.parametrize("given", ["soon", "-PT1S", None, True, [], -1])
def test_bad_durations_are_step_errors(given: object) -> None:
    with pytest.raises(StepError) as raised:
        duration(given, "duration")
    assert raised.value.error_class == "InvalidParameters"
    assert "duration" in raised.value.message


def test_moments_need_an_offset() -> None:
    assert moment("2026-01-01T01:00:00+01:00", "until") == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(StepError):
        moment("2026-01-01T00:00:00", "until")
    with pytest.raises(StepError):
        moment("tomorrow", "until")
    with pytest.raises(StepError):
        text("", "event")
