"""``flowmesh watch`` and ``flowmesh run`` end to end, against a local aiohttp server that
plays the gateway: canned Server-Sent Events streams, dropped connections, problem answers.

Outside a terminal ``watch`` prints one line per change, which is what most tests read.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from rich.console import Console

from flowmesh_cli.main import run_cli
from flowmesh_client import RetryPolicy, StreamPolicy
from flowmesh_proto.runs import (
    RunCancelled,
    RunError,
    RunEvent,
    RunFailed,
    RunQueued,
    RunStarted,
    RunSucceeded,
    RunTimedOut,
    StepBatch,
    StepFailed,
    StepLog,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    TriggerInfo,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
RUN = "0190f000-0000-7000-8000-000000000001"
WF = "7c1e0000-0000-4000-8000-000000000002"
KEY = "fm_acme_0123456789abcdef"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FAST = StreamPolicy(first_delay=0.01, max_delay=0.05, idle_timeout=5.0)
NO_WAIT = RetryPolicy(first_delay=0.01, max_delay=0.05)


def common(seconds: float) -> dict[str, Any]:
    at = T0 + timedelta(seconds=seconds)
    return {"tenant": "acme", "run_id": RUN, "workflow_id": WF, "version": 3, "at": at}


def started(node: str, s: float, attempt: int = 1) -> StepStarted:
    return StepStarted(**common(s), node_id=node, attempt=attempt)


def succeeded(node: str, s: float, attempt: int = 1) -> StepSucceeded:
    return StepSucceeded(**common(s), node_id=node, attempt=attempt, output={"n": 1})


def story(terminal: RunEvent) -> list[RunEvent]:
    """A run: fetch fails once and is retried, then a batch runs two steps, one is skipped."""
    return [
        RunQueued(**common(0), trigger=TriggerInfo(kind="api"), input={"order": 42}),
        RunStarted(**common(0.2), executor="ex-1"),
        started("fetch", 0.3),
        StepLog(**common(0.4), node_id="fetch", message="calling the shop"),
        StepBatch(
            **common(1.3),
            events=[
                StepFailed(
                    **common(1.3),
                    node_id="fetch",
                    attempt=1,
                    error_class="ConnectError",
                    message="connection refused",
                    final=False,
                ),
                StepRetrying(**common(1.3), node_id="fetch", attempt=2, delay_ms=1000),
            ],
        ),
        started("fetch", 2.3, 2),
        succeeded("fetch", 3.1, 2),
        StepBatch(
            **common(3.2), events=[started("ship", 3.2), StepSkipped(**common(3.2), node_id="mail")]
        ),
        succeeded("ship", 4.0),
        terminal,
    ]


SUCCEEDED = story(RunSucceeded(**common(4.1), output={"ok": True}))
SUCCESS_LINES = [
    f"run {RUN} queued (workflow {WF} v3)",
    f"run {RUN} running",
    "step fetch running (attempt 1)",
    "step fetch retrying after attempt 1: ConnectError: connection refused; attempt 2 in 1.0s",
    "step fetch running (attempt 2)",
    "step fetch succeeded in 2.8s (2 attempts)",
    "step ship running (attempt 1)",
    "step mail skipped",
    "step ship succeeded in 800ms (1 attempt)",
    f"run {RUN} succeeded in 3.9s",
]


def frame(seq: int, event: RunEvent) -> bytes:
    kind = event.__struct_config__.tag
    return f"id: {seq}\nevent: {kind}\ndata: ".encode() + msgspec.json.encode(event) + b"\n\n"


def frames(events: list[RunEvent], first: int = 1) -> bytes:
    return b"".join(frame(seq, event) for seq, event in enumerate(events, start=first))


Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CannedGateway:
    """Plays the gateway: each events request takes the next scripted answer, in order."""

    def __init__(self) -> None:
        self.url = ""
        self.answers: list[Answer] = []
        self.seen: list[dict[str, str]] = []  # headers of each events request
        self.seen_at: list[float] = []  # and when it came (loop time)
        self.executed: list[tuple[str, Any]] = []  # (workflow id, body)
        self.execute_answer: tuple[int, Any] = (202, {"run_id": RUN, "status": "queued"})
        self.release = asyncio.Event()  # ends the answers that hold a connection open

    async def events(self, request: web.Request) -> web.StreamResponse:
        assert request.match_info["tenant"] == "acme"
        self.seen.append(dict(request.headers))
        self.seen_at.append(asyncio.get_running_loop().time())
        if not self.answers:
            return problem(500, "INTERNAL", "no answer left in the script")
        return await self.answers.pop(0)(request)

    async def execute(self, request: web.Request) -> web.StreamResponse:
        self.executed.append((request.match_info["id"], await request.json()))
        status, body = self.execute_answer
        if status >= 400:
            return problem(status, body[0], body[1])
        return web.json_response(body, status=status)


def problem(status: int, code: str, detail: str, **headers: str) -> web.Response:
    body = {"type": "about:blank", "title": code.capitalize(), "status": status, "code": code}
    body |= {"code_num": status * 10, "detail": detail, "request_id": "req-1"}
    return web.json_response(
        body, status=status, content_type="application/problem+json", headers=headers
    )


def stream(data: bytes, *, end: str = "finish", heartbeats: float = 0.0) -> Answer:
    """Serve ``data`` in small chunks, then ``finish`` the response, ``drop`` the connection,
    or ``hold`` it silent (after ``heartbeats`` seconds of keep-alive comments)."""

    async def answer(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b": keep-alive\n\nretry: 10\n\n")
        for start in range(0, len(data), 97):
            await resp.write(data[start : start + 97])
        if end == "drop":
            assert request.transport is not None
            request.transport.close()
        elif end == "hold":
            loop = asyncio.get_running_loop()
            until = loop.time() + heartbeats
            while loop.time() < until:
                await resp.write(b": keep-alive\n\n")
                await asyncio.sleep(0.05)
            await asyncio.wait_for(gateway_release(request).wait(), 10)
        return resp

    return answer


def gateway_release(request: web.Request) -> asyncio.Event:
    return request.app[CANNED].release


CANNED = web.AppKey("canned", CannedGateway)


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[CannedGateway]:
    canned = CannedGateway()
    app = web.Application()
    app[CANNED] = canned
    app.router.add_get("/api/v1/{tenant}/runs/{run_id}/events", canned.events)
    app.router.add_post("/api/v1/{tenant}/workflows/{id}/execute", canned.execute)
    async with TestServer(app) as server:
        canned.url = str(server.make_url("")).rstrip("/")
        try:
            yield canned
        finally:
            canned.release.set()


class Result(msgspec.Struct):
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


async def flowmesh(
    gateway: CannedGateway,
    *argv: str,
    policy: StreamPolicy = FAST,
    console: Callable[[io.StringIO], Console] | None = None,
    cwd: Path | None = None,
) -> Result:
    out, err = io.StringIO(), io.StringIO()
    env = {"FLOWMESH_URL": gateway.url, "FLOWMESH_TENANT": "acme", "FLOWMESH_API_KEY": KEY}
    code = await asyncio.wait_for(
        run_cli(
            argv,
            env=env,
            cwd=cwd or Path("/nonexistent"),
            out=out,
            err=err,
            policy=policy,
            retry=NO_WAIT,
            console=console(out) if console else None,
        ),
        timeout=15,
    )
    return Result(code, out.getvalue(), err.getvalue())


# --- watch ---


async def test_watch_follows_a_run_to_success(gateway: CannedGateway) -> None:
    gateway.answers = [stream(frames(SUCCEEDED), end="hold")]  # it exits on the terminal event
    result = await flowmesh(gateway, "watch", RUN)
    assert (result.code, result.err) == (0, "")
    assert result.lines == SUCCESS_LINES
    [headers] = gateway.seen
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["Accept"] == "text/event-stream"
    assert "Last-Event-ID" not in headers
    assert headers["User-Agent"].startswith("flowmeshctl/")


@pytest.mark.parametrize(
    ("terminal", "last_line"),
    [
        (
            RunFailed(**common(5), error=RunError(code="STEP_FAILED", message="boom", node_id="x")),
            f"run {RUN} failed in 4.8s: STEP_FAILED: boom (step x)",
        ),
        (RunCancelled(**common(5), reason="ops"), f"run {RUN} cancelled in 4.8s: CANCELLED: ops"),
        (
            RunTimedOut(**common(5)),
            f"run {RUN} timed_out in 4.8s: TIMED_OUT: the run did not finish within its timeout",
        ),
    ],
)
async def test_watch_exits_6_when_the_run_does_not_succeed(
    gateway: CannedGateway, terminal: RunEvent, last_line: str
) -> None:
    gateway.answers = [stream(frames(story(terminal)))]
    result = await flowmesh(gateway, "watch", RUN)
    assert result.code == 6
    assert result.lines[:-1] == SUCCESS_LINES[:-1]
    assert result.lines[-1] == last_line


async def test_a_dropped_connection_resumes_after_the_last_whole_event(
    gateway: CannedGateway,
) -> None:
    partial = frame(4, SUCCEEDED[3])[:-7]  # the fourth event, cut off
    gateway.answers = [
        stream(frames(SUCCEEDED[:3]) + partial, end="drop"),
        stream(frames(SUCCEEDED[3:], first=4)),
    ]
    result = await flowmesh(gateway, "watch", RUN)
    assert result.code == 0
    assert result.lines == SUCCESS_LINES
    assert [h.get("Last-Event-ID") for h in gateway.seen] == [None, "3"]
    assert "reconnecting after event 3 in 0.0s (1/5)" in result.err
    assert result.err.startswith("flowmesh: ClientPayloadError")


async def test_a_replay_after_an_early_end_is_not_shown_twice(gateway: CannedGateway) -> None:
    gateway.answers = [
        stream(frames(SUCCEEDED[:6])),  # ends cleanly, but the run has not
        stream(frames(SUCCEEDED)),  # and this one ignores Last-Event-ID: everything again
    ]
    result = await flowmesh(gateway, "watch", RUN)
    assert result.code == 0
    assert result.lines == SUCCESS_LINES
    assert [h.get("Last-Event-ID") for h in gateway.seen] == [None, "6"]
    assert "the stream ended before the run did" in result.err


async def test_heartbeats_keep_a_quiet_stream_and_silence_reconnects(
    gateway: CannedGateway,
) -> None:
    policy = msgspec.structs.replace(FAST, idle_timeout=0.5)
    gateway.answers = [
        stream(frames(SUCCEEDED[:2]), end="hold", heartbeats=1.5),  # 3 idle timeouts long
        stream(frames(SUCCEEDED[2:], first=3)),
    ]
    result = await flowmesh(gateway, "watch", RUN, policy=policy)
    assert result.code == 0
    assert result.lines == SUCCESS_LINES
    assert [h.get("Last-Event-ID") for h in gateway.seen] == [None, "2"]  # one reconnect
    first, second = gateway.seen_at
    assert second - first >= 1.5  # not while heartbeats came: after the silence that followed
    assert "Timeout" in result.err


async def test_busy_answers_are_retried(gateway: CannedGateway) -> None:
    async def busy(request: web.Request) -> web.Response:
        return problem(503, "UNAVAILABLE", "the registry is restarting", **{"Retry-After": "0"})

    gateway.answers = [busy, stream(frames(SUCCEEDED))]
    result = await flowmesh(gateway, "watch", RUN)
    assert result.code == 0
    assert result.lines == SUCCESS_LINES
    assert "503 UNAVAILABLE: the registry is restarting" in result.err


async def test_watch_gives_up_after_its_retries(gateway: CannedGateway) -> None:
    gateway.answers = [stream(frames(SUCCEEDED[:2]), end="drop")] + [
        stream(b"", end="drop") for _ in range(3)
    ]
    result = await flowmesh(gateway, "watch", RUN, "--retries", "2")
    assert result.code == 3
    assert len(gateway.seen) == 3
    assert [h.get("Last-Event-ID") for h in gateway.seen] == [None, "2", "2"]
    assert result.err.splitlines()[-1] == (
        f"flowmesh: lost the event stream of run {RUN} (ClientPayloadError: Response payload"
        " is not completed: <TransferEncodingError: 400, message='Not enough data to satisfy"
        " transfer length header.'>) and 2 reconnects failed"
    )
    assert result.lines == SUCCESS_LINES[:2]


@pytest.mark.parametrize(
    ("status", "code", "exit_code", "message"),
    [
        (404, "NOT_FOUND", 4, "flowmesh: 404 NOT_FOUND: no such run in tenant acme"),
        (401, "UNAUTHENTICATED", 5, "flowmesh: 401 UNAUTHENTICATED: no such run in tenant acme"),
        (403, "FORBIDDEN", 5, "flowmesh: 403 FORBIDDEN: no such run in tenant acme"),
        (400, "BAD_REQUEST", 1, "flowmesh: 400 BAD_REQUEST: no such run in tenant acme"),
    ],
)
async def test_refusals_are_one_clear_line(
    gateway: CannedGateway, status: int, code: str, exit_code: int, message: str
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return problem(status, code, "no such run\nin tenant acme")

    gateway.answers = [refuse]
    result = await flowmesh(gateway, "watch", RUN)
    assert (result.code, result.out, result.err) == (exit_code, "", message + "\n")
    assert len(gateway.seen) == 1  # a refusal is not retried


async def test_an_answer_that_is_not_an_event_stream(gateway: CannedGateway) -> None:
    async def json_answer(request: web.Request) -> web.Response:
        return web.json_response({"steps": []})

    gateway.answers = [json_answer]
    result = await flowmesh(gateway, "watch", RUN)
    assert result.code == 1
    assert "application/json content, not text/event-stream" in result.err


async def test_an_unknown_event_is_skipped_with_a_warning(gateway: CannedGateway) -> None:
    odd = b'id: 3\nevent: run.paused\ndata: {"kind": "run.paused"}\n\n'
    data = frames(SUCCEEDED[:2]) + odd + frames(SUCCEEDED[2:], first=4)
    gateway.answers = [stream(data)]
    result = await flowmesh(gateway, "watch", RUN)
    assert result.code == 0
    assert result.lines == SUCCESS_LINES
    assert result.err.startswith(
        "flowmesh: skipped event 3 (run.paused): Invalid value 'run.paused'"
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_unreachable_gateway_fails_at_once(gateway: CannedGateway) -> None:
    gateway.url = f"http://127.0.0.1:{closed_port()}"
    result = await flowmesh(gateway, "watch", RUN)
    assert result.code == 3
    assert result.err.startswith(
        f"flowmesh: cannot reach the gateway at {gateway.url}: ClientConnectorError"
    )
    assert "reconnecting" not in result.err


async def test_a_live_table_in_a_terminal(gateway: CannedGateway) -> None:
    gateway.answers = [stream(frames(SUCCEEDED))]

    def terminal(out: io.StringIO) -> Console:
        return Console(file=out, force_terminal=True, width=120, color_system="truecolor")

    result = await flowmesh(gateway, "watch", RUN, console=terminal)
    assert result.code == 0
    final = result.out.rsplit("\x1b[2K", 1)[1]  # the last frame drawn
    assert "\x1b[32msucceeded" in final  # in green
    words = [row.split() for row in ANSI.sub("", final).splitlines()]
    assert words == [
        ["run", RUN, "workflow", WF, "v3", "succeeded", "3.9s"],
        ["step", "status", "attempts", "duration", "error"],
        ["fetch", "succeeded", "2", "2.8s"],
        ["ship", "succeeded", "1", "800ms"],
        ["mail", "skipped"],
    ]
    assert result.out.count("queued") >= 1  # earlier frames showed the run as it went


async def test_plain_lines_can_be_asked_for_in_a_terminal(gateway: CannedGateway) -> None:
    gateway.answers = [stream(frames(SUCCEEDED))]

    def terminal(out: io.StringIO) -> Console:
        return Console(file=out, force_terminal=True)

    result = await flowmesh(gateway, "watch", RUN, "--plain", console=terminal)
    assert (result.code, result.lines) == (0, SUCCESS_LINES)


# --- run ---


async def test_run_prints_the_run_id(gateway: CannedGateway) -> None:
    result = await flowmesh(gateway, "run", WF, "--input", '{"order": 42}')
    assert (result.code, result.out, result.err) == (0, f"{RUN}\n", "")
    [(workflow, body)] = gateway.executed
    key = body.pop("idempotency_key")  # made by the client, once per call: safe to retry
    assert key.startswith("fmc-")
    assert (workflow, body) == (WF, {"input": {"order": 42}})
    assert gateway.seen == []


async def test_run_with_watch_follows_the_new_run(gateway: CannedGateway, tmp_path: Path) -> None:
    (tmp_path / "input.json").write_text('{"order": 7}')
    gateway.answers = [stream(frames(SUCCEEDED))]
    result = await flowmesh(
        gateway,
        "--tenant",
        "acme",
        "run",
        WF,
        "--input-file",
        "input.json",
        "--workflow-version",
        "3",
        "--idempotency-key",
        "order-7",
        "--watch",
        cwd=tmp_path,
    )
    assert result.code == 0
    assert result.lines == [RUN, *SUCCESS_LINES]
    assert gateway.executed == [
        (WF, {"input": {"order": 7}, "idempotency_key": "order-7", "version": 3})
    ]


async def test_run_refused(gateway: CannedGateway) -> None:
    gateway.execute_answer = (409, ("WORKFLOW_DISABLED", "workflow orders is disabled"))
    result = await flowmesh(gateway, "run", WF, "--watch")
    assert result.code == 1
    assert result.err == "flowmesh: 409 WORKFLOW_DISABLED: workflow orders is disabled\n"
    assert gateway.seen == []


async def test_run_of_an_unknown_workflow(gateway: CannedGateway) -> None:
    gateway.execute_answer = (404, ("WORKFLOW_NOT_FOUND", "no such workflow"))
    result = await flowmesh(gateway, "run", WF)
    assert result.code == 4
    assert result.err == "flowmesh: 404 WORKFLOW_NOT_FOUND: no such workflow\n"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["run", WF, "--input", "{nope"], "flowmesh: --input is not JSON: "),
        (["run", WF, "--input-file", "missing.json"], "flowmesh: cannot read "),
        (["run", WF, "--input", "1", "--input-file", "f"], "not allowed with argument"),
        (["watch"], "the following arguments are required: run_id"),
        ([], "the following arguments are required: command"),
        (["watch", RUN, "--retries", "many"], "invalid int value"),
    ],
)
async def test_usage_errors_exit_2_before_asking_anything(
    gateway: CannedGateway, tmp_path: Path, argv: list[str], complaint: str
) -> None:
    result = await flowmesh(gateway, *argv, cwd=tmp_path)
    assert result.code == 2
    assert complaint in result.err
    assert gateway.seen == gateway.executed == []


async def test_help_goes_to_the_output(gateway: CannedGateway) -> None:
    result = await flowmesh(gateway, "watch", "--help")
    assert result.code == 0
    assert result.out.startswith("usage: flowmesh watch")


async def test_the_console_script_without_configuration(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMESH_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flowmesh_cli",
        "watch",
        RUN,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert out == b""
    assert err.decode().startswith("flowmesh: no gateway URL, tenant or API key: give --url")


# --- runs logs ---


async def test_runs_logs_prints_the_log_lines_to_the_end(gateway: CannedGateway) -> None:
    gateway.answers = [stream(frames(SUCCEEDED), end="hold")]
    result = await flowmesh(gateway, "runs", "logs", RUN)
    assert (result.code, result.out, result.err) == (
        0,
        "12:00:00.400 fetch info calling the shop\n",
        "",
    )
