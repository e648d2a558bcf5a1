"""Limits fail the step or the run with a clear error, never the executor; secrets stay out
of every event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import msgspec
import pytest_asyncio

from flowmesh_executor.main import ExecutorApp, start_executor
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto import registry as r
from tests.integration.executor.runs import Runs


@pytest_asyncio.fixture(loop_scope="session")
async def small(
    executor: ExecutorApp, executor_settings: ExecutorSettings
) -> AsyncIterator[ExecutorApp]:
    """An executor with small limits, the only one taking runs meanwhile."""
    settings = msgspec.structs.replace(
        executor_settings, max_events_per_run=8, max_input_bytes=2000, max_output_bytes=500
    )
    executor.consumer.pause()
    try:
        async with AsyncExitStack() as stack:
            yield await start_executor(settings, stack)
    finally:
        await executor.consumer.resume()


def retrying(attempts: int) -> dict[str, object]:
    return {
        "name": "retrying",
        "nodes": [
            {
                "id": "flaky",
                "type": "delay",
                "parameters": {"duration": "{{ trigger.data.d }}"},
                "retry": {"max_attempts": attempts, "backoff": "fixed", "initial": "PT0.001S"},
            }
        ],
        "edges": [],
    }


async def test_a_big_output_fails_its_step(runs: Runs, small: ExecutorApp) -> None:
    definition = {
        "name": "big-output",
        "nodes": [
            {"id": "big", "type": "transform", "parameters": {"output": "{{ trigger.data.text }}"}},
            {"id": "after", "type": "noop"},
        ],
        "edges": [{"from": "big", "to": "after"}],
    }
    state = await runs.run(definition, {"text": "x" * 1000})
    assert state.status == "failed"
    assert state.nodes["big"].error_class == "OutputTooLarge"
    assert "limit is 500" in (state.nodes["big"].error or "")
    ok = await runs.run(definition, {"text": "x" * 100})
    assert ok.status == "succeeded"  # the executor is none the worse


async def test_a_big_input_fails_the_run(runs: Runs, small: ExecutorApp) -> None:
    state = await runs.run(retrying(1), {"d": "PT0S", "pad": "y" * 3000})
    assert state.status == "failed"
    assert state.error is not None and state.error.code == "INPUT_TOO_LARGE"


async def test_the_event_limit_fails_the_run_not_the_executor(
    runs: Runs, small: ExecutorApp
) -> None:
    state = await runs.run(retrying(20), {"d": "never"})
    assert state.status == "failed"
    assert state.error is not None and state.error.code == "RUN_EVENT_LIMIT"
    events = await runs.events(state.ref.run_id)  # type: ignore[union-attr]
    assert len(events) <= 8 + 1  # its limit, and the run.queued published before it ran
    assert (await runs.run(retrying(1), {"d": "PT0S"})).status == "succeeded"


async def test_secrets_are_used_but_never_published(runs: Runs) -> None:
    await runs.api("secret_put", r.SecretPut(name="API_TOKEN", value="s3cr3t-value"))
    definition = {
        "name": "secretive",
        "nodes": [
            {
                "id": "leak",
                "type": "transform",
                "parameters": {"output": {"token": "Bearer {{ secrets.API_TOKEN }}"}},
            },
            {
                "id": "check",
                "type": "condition",
                "parameters": {"expression": "secrets.API_TOKEN == 's3cr3t-value'"},
            },
            {
                "id": "fail",
                "type": "delay",
                "parameters": {"duration": "{{ secrets.API_TOKEN }}"},
                "on_error": "continue",
            },
        ],
        "edges": [
            {"from": "leak", "to": "check"},
            {"from": "check", "to": "fail", "when": "true"},
        ],
    }
    state = await runs.run(definition)
    assert state.status == "succeeded", state.error
    assert state.nodes["leak"].output == {"token": "Bearer [redacted]"}
    assert state.nodes["check"].output is True  # the value was there to compare
    assert state.nodes["fail"].error_class == "InvalidParameters"
    raw = b"".join(msgspec.json.encode(e) for e in await runs.events(state.ref.run_id))  # type: ignore[union-attr]
    assert b"s3cr3t" not in raw
