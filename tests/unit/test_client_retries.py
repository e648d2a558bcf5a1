"""flowmesh-client's retries against a local fake gateway that answers 503 (or 429) first:
a GET and an ``execute`` (with the one idempotency key the call made) are asked again, a
POST other than execute never; Retry-After is honoured; the decision itself is pure."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from flowmesh_client import Client, RateLimited, RetryPolicy, Unavailable
from flowmesh_proto.http import RunAccepted

WF = "7c1e0000-0000-4000-8000-000000000002"
RUN = "0190f000-0000-7000-8000-000000000001"
FAST = RetryPolicy(attempts=4, first_delay=0.01, max_delay=0.05)


class Fake:
    """Answers each route's scripted statuses in order (then 200/202), recording bodies."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.seen: dict[str, list[Any]] = {}
        self.at: list[float] = []

    async def answer(self, request: web.Request) -> web.Response:
        route = f"{request.method} {request.match_info.get('what', '')}"
        body = await request.read()
        self.seen.setdefault(route, []).append(msgspec.json.decode(body) if body else None)
        self.at.append(time.monotonic())
        queue = self.script.get(route, [])
        if queue:
            status, headers = queue.pop(0)
            problem = {"title": "busy", "status": status, "code": "UNAVAILABLE", "code_num": 5030}
            return web.json_response(
                problem, status=status, headers=headers, content_type="application/problem+json"
            )
        if route.startswith("GET"):
            return web.json_response({"items": []})
        return web.json_response({"run_id": RUN, "status": "queued"}, status=202)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[tuple[Fake, str]]:
    state = Fake()
    app = web.Application()
    app.router.add_route("*", "/api/v1/acme/{what:.*}", state.answer)
    async with TestServer(app) as server:
        yield state, str(server.make_url("")).rstrip("/")


def client(url: str, retry: RetryPolicy = FAST) -> Client:
    return Client(url, "acme", "fm_acme_k", env={}, cwd=Path("/nonexistent"), retry=retry)


async def test_a_get_is_asked_again_after_503(fake: tuple[Fake, str]) -> None:
    state, url = fake
    state.script["GET secrets"] = [(503, {}), (503, {})]
    async with client(url) as c:
        assert (await c.secrets.list()).items == []
    assert len(state.seen["GET secrets"]) == 3


async def test_execute_is_asked_again_with_the_same_idempotency_key(
    fake: tuple[Fake, str],
) -> None:
    state, url = fake
    route = f"POST workflows/{WF}/execute"
    state.script[route] = [(503, {}), (502, {})]
    async with client(url) as c:
        accepted = await c.workflows.execute(WF, {"order": 1})
        again = await c.workflows.execute(WF, {"order": 2})
    assert accepted == RunAccepted(run_id=RUN, status="queued") and again.run_id == RUN
    keys = [body["idempotency_key"] for body in state.seen[route]]
    assert len(keys) == 4
    assert keys[0] == keys[1] == keys[2] != keys[3]  # one key per call, kept on every attempt


async def test_a_post_other_than_execute_is_never_retried(fake: tuple[Fake, str]) -> None:
    state, url = fake
    state.script[f"POST runs/{RUN}/retry"] = [(503, {})]
    async with client(url) as c:
        with pytest.raises(Unavailable) as caught:
            await c.runs.retry(RUN)
    assert (caught.value.status, caught.value.code) == (503, "UNAVAILABLE")
    assert len(state.seen[f"POST runs/{RUN}/retry"]) == 1


async def test_retry_after_is_honoured_and_attempts_are_bounded(fake: tuple[Fake, str]) -> None:
    state, url = fake
    state.script["GET secrets"] = [(429, {"Retry-After": "0.3"})]
    async with client(url, RetryPolicy(attempts=2, first_delay=5.0, max_delay=10.0)) as c:
        await c.secrets.list()
        assert state.at[1] - state.at[0] >= 0.25  # Retry-After, not the 5 s backoff
        state.script["GET secrets"] = [(429, {"Retry-After": "0"})] * 3
        with pytest.raises(RateLimited) as caught:
            await c.secrets.list()
    assert caught.value.retry_after == 0.0
    assert len(state.seen["GET secrets"]) == 4  # 2 + the 2 attempts allowed


def test_the_decision_is_pure() -> None:
    policy = RetryPolicy(attempts=3, first_delay=0.5, max_delay=1.5)
    args = {"keyed": False, "status": 503}
    assert policy.delay(method="GET", attempt=1, **args) == 0.5
    assert policy.delay(method="GET", attempt=2, **args) == 1.0
    assert policy.delay(method="GET", attempt=3, **args) is None  # attempts spent
    assert policy.delay(method="POST", attempt=1, **args) is None
    assert policy.delay(method="POST", attempt=1, keyed=True, status=None) == 0.5
    assert policy.delay(method="GET", attempt=1, keyed=False, status=500) is None
    assert policy.delay(method="PUT", attempt=1, keyed=False, status=429, retry_after=9) == 1.5
