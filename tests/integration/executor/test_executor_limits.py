"""Limits fail the step or the run with a clear error, never the executor; secrets stay out
of every event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import msgspec
import pytest
import pytest_asyncio
from aiohttp import web

from flowmesh_executor.main import ExecutorApp, start_executor
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto import registry as r
from flowmesh_proto.errors import ErrorCode
from flowmesh_shared.errors import RemoteError
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


@pytest_asyncio.fixture(loop_scope="session")
async def echo() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A local server answering every request with the headers it got."""
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"authorization": request.headers.get("Authorization")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_secrets_are_sent_but_never_published(
    runs: Runs, echo: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = echo
    await runs.api("secret_put", r.SecretPut(name="API_TOKEN", value="s3cr3t-value"))
    definition = {
        "name": "secretive",
        "nodes": [
            {
                "id": "call",
                "type": "http",
                "parameters": {
                    "url": f"{url}/echo",
                    "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
                },
            },
            {
                "id": "fail",
                "type": "http",
                "parameters": {"url": "http://127.0.0.1:1/{{ secrets.API_TOKEN }}"},
                "on_error": "continue",
            },
            {
                "id": "after",
                "type": "transform",
                "parameters": {"output": "{{ nodes.call.output.body.authorization }}"},
            },
            {
                "id": "each",
                "type": "map",
                "parameters": {
                    "items": "[1, 2]",
                    "node": {
                        "type": "http",
                        "parameters": {
                            "url": url + "/item/{{ item }}",
                            "headers": {"Authorization": "Item {{ secrets.API_TOKEN }}"},
                        },
                    },
                },
            },
        ],
        "edges": [
            {"from": "call", "to": "fail"},
            {"from": "fail", "to": "after"},
            {"from": "after", "to": "each"},
        ],
    }
    state = await runs.run(definition)
    assert state.status == "succeeded", state.error
    sent = [headers["Authorization"] for headers in seen[-3:]]  # sent where meant to go
    assert sent == ["Bearer s3cr3t-value", "Item s3cr3t-value", "Item s3cr3t-value"]
    bodies = [item["body"] for item in state.nodes["each"].output]
    assert bodies == [{"authorization": "Item [redacted]"}] * 2
    assert state.nodes["call"].output["body"] == {"authorization": "Bearer [redacted]"}
    assert state.nodes["after"].output == "Bearer [redacted]"
    assert state.nodes["fail"].error_class == "HttpError"  # its message named the path
    raw = b"".join(msgspec.json.encode(e) for e in await runs.events(state.ref.run_id))  # type: ignore[union-attr]
    assert b"s3cr3t" not in raw


async def test_a_secret_read_elsewhere_is_refused_when_stored(runs: Runs) -> None:
    definition = {
        "name": "peeking",
        "nodes": [
            {
                "id": "peek",
                "type": "transform",
                "parameters": {"output": "{{ bytes(secrets.API_TOKEN) }}"},
            }
        ],
    }
    with pytest.raises(RemoteError) as refused:
        await runs.workflow(definition)
    assert refused.value.code is ErrorCode.SECRET_NOT_ALLOWED
