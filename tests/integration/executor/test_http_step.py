"""The http step against a real local HTTP server, through the session ``http_session`` makes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import msgspec
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from flowmesh_executor.instant import render_parameters
from flowmesh_executor.nodes import answers, http
from flowmesh_executor.nodes.base import StepCall, StepError, StepServices
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto.entries import node_catalog
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_proto.workflow import HttpNode, HttpParameters

pytestmark = pytest.mark.integration

LIMIT = 1000
SECRET = "s3cr3t-token-value"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Origin:
    """The local server, and what it saw."""

    base: str
    port: int
    seen: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


def _routes(origin: Origin) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    async def record(request: web.Request) -> None:
        origin.seen.append(request)
        origin.bodies.append(await request.read())

    @routes.get("/json")
    async def json_answer(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"hello": "world", "n": 1}, headers={"X-Answer": "yes"})

    @routes.route("*", "/echo")
    async def echo(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="echoed", headers={"Set-Cookie": "a=1"})

    @routes.get("/text")
    async def text(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="plain words", content_type="text/plain")

    @routes.get("/status/{code}/{tail:.*}")
    @routes.get("/status/{code}")
    async def status(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(
            status=int(request.match_info["code"]),
            text=f"unavailable; you sent {request.headers.get('Authorization', '')}",
        )

    @routes.get("/sized/{size}/{tail:.*}")
    @routes.get("/sized/{size}")
    async def sized(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=b"x" * int(request.match_info["size"]))

    @routes.get("/streamed/{size}")
    async def streamed(request: web.Request) -> web.StreamResponse:
        await record(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(int(request.match_info["size"]) // 100):
            await response.write(b"y" * 100)
        await response.write_eof()
        return response

    @routes.get("/redirect")
    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound("/json")

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await asyncio.wait_for(origin.release.wait(), 10)
        return web.Response(text="late")

    return routes


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def origin() -> AsyncIterator[Origin]:
    app = web.Application()
    server = TestServer(app, host="127.0.0.1", port=0)
    holder = Origin(base="", port=0)
    app.add_routes(_routes(holder))
    await server.start_server()
    try:
        holder.port = server.port or 0
        holder.base = f"http://127.0.0.1:{holder.port}"
        yield holder
    finally:
        holder.release.set()
        await server.close()


class Step:
    """Runs the http step with one session and settings."""

    def __init__(self, settings: ExecutorSettings, services: StepServices) -> None:
        self.settings, self.services = settings, services

    async def __call__(
        self,
        parameters: Mapping[str, Any],
        *,
        secrets: Mapping[str, str] | None = None,
        traceparent: str | None = None,
        deadline: datetime | None = None,
        template: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run the step on ``parameters``, rendered from the node's ``template`` (by default
        ``parameters`` themselves: no templates)."""
        if template is None:
            url = parameters.get("url")
            node = HttpNode(
                id="call", parameters=HttpParameters(url=url if isinstance(url, str) else "")
            )
        else:
            node = HttpNode(id="call", parameters=msgspec.convert(template, HttpParameters))
        call = StepCall(
            tenant="acme",
            run_id="run-1",
            workflow_id="wf-1",
            version=1,
            node=node,
            attempt=1,
            idempotency_key="run-1:call",
            parameters=parameters,
            variables={},
            started_at=datetime.now(UTC),
            deadline=deadline,
            secrets=secrets or {},
            traceparent=traceparent,
        )
        return await http.run(call, self.services)

    async def fails(self, parameters: Mapping[str, Any], **kwargs: Any) -> StepError:
        with pytest.raises(StepError) as caught:
            await self(parameters, **kwargs)
        return caught.value

    async def fails_rendered(
        self, template: Mapping[str, Any], secrets: Mapping[str, str]
    ) -> StepError:
        """Fail the step of a node whose parameters are ``template``, rendered with ``secrets``
        as the executor renders them."""
        parameters = render_parameters("http", template, {}, secrets)
        return await self.fails(parameters, secrets=secrets, template=template)


async def _step(allow_private: bool, **overrides: Any) -> AsyncIterator[Step]:
    settings = ExecutorSettings(
        http_allow_private=allow_private, http_max_response_bytes=LIMIT, **overrides
    )
    session = http.http_session(settings)
    unused: Any = None  # http steps use none of NATS, waits, children, definitions
    services = StepServices(
        nc=unused,
        js=unused,
        subjects=Subjects(),
        streams=stream_names(),
        settings=settings,
        http=session,
        waits=unused,
        children=unused,
        definitions=unused,
        event_ids=unused,
    )
    try:
        yield Step(settings, services)
    finally:
        await session.close()


@pytest_asyncio.fixture(loop_scope="session")
async def step() -> AsyncIterator[Step]:
    async for value in _step(allow_private=True):
        yield value


@pytest_asyncio.fixture(loop_scope="session")
async def guarded_step() -> AsyncIterator[Step]:
    async for value in _step(allow_private=False):
        yield value


# --- answers ------------------------------------------------------------------------------


async def test_get_json_gives_status_headers_and_decoded_body(step: Step, origin: Origin) -> None:
    output = await step({"url": origin.url("/json")})
    assert output["status"] == 200
    assert output["body"] == {"hello": "world", "n": 1}
    assert output["headers"]["x-answer"] == "yes"
    assert output["headers"]["content-type"].startswith("application/json")
    assert all(name == name.lower() for name in output["headers"])
    msgspec.json.encode(output)  # JSON-compatible
    catalog = next(entry for entry in node_catalog() if entry.name == "http")
    assert jsonschema_rs.validator_for(catalog.output_schema).is_valid(output)
    assert origin.seen[-1].headers["Idempotency-Key"] == "run-1:call"


async def test_text_answers_are_text(step: Step, origin: Origin) -> None:
    output = await step({"url": origin.url("/text")})
    assert output["body"] == "plain words"


async def test_post_sends_json_body_headers_query_and_idempotency_key(
    step: Step, origin: Origin
) -> None:
    output = await step(
        {
            "url": origin.url("/echo?fixed=1"),
            "method": "post",
            "headers": {"X-Token": "abc", "X-Number": 5, "X-Flag": True},
            "query": {"page": 2, "q": "a b&c", "exact": False},
            "body": {"order": "o-1", "amount": 12.5, "items": [1, 2]},
        },
        traceparent=TRACEPARENT,
    )
    assert output["status"] == 200
    assert output["body"] == "echoed"
    request, body = origin.seen[-1], origin.bodies[-1]
    assert request.method == "POST"
    assert request.headers["X-Token"] == "abc"
    assert request.headers["X-Number"] == "5"
    assert request.headers["X-Flag"] == "true"
    assert request.headers["Idempotency-Key"] == "run-1:call"
    assert request.headers["traceparent"] == TRACEPARENT
    assert request.headers["Content-Type"] == "application/json"
    assert dict(request.query) == {"fixed": "1", "page": "2", "q": "a b&c", "exact": "false"}
    assert msgspec.json.decode(body) == {"order": "o-1", "amount": 12.5, "items": [1, 2]}
    assert "cookie" not in {name.lower() for name in request.headers}


async def test_string_body_is_sent_as_text_and_user_headers_win(step: Step, origin: Origin) -> None:
    await step(
        {
            "url": origin.url("/echo"),
            "method": "PUT",
            "headers": {"idempotency-key": "mine", "Content-Type": "text/csv"},
            "body": "a,b\n1,2\n",
        }
    )
    request, body = origin.seen[-1], origin.bodies[-1]
    assert request.method == "PUT"
    assert request.headers.getall("Idempotency-Key") == ["mine"]
    assert request.headers["Content-Type"] == "text/csv"
    assert body == b"a,b\n1,2\n"
    assert "traceparent" not in request.headers


async def test_cookies_are_not_kept_between_steps(step: Step, origin: Origin) -> None:
    await step({"url": origin.url("/echo")})  # answers Set-Cookie
    await step({"url": origin.url("/echo")})
    assert "Cookie" not in origin.seen[-1].headers


# --- status -------------------------------------------------------------------------------


async def test_unexpected_status_fails_with_http_status(step: Step, origin: Origin) -> None:
    error = await step.fails({"url": origin.url("/status/503")})
    assert error.error_class == "HttpStatus"
    assert error.message.startswith(f"GET {origin.url('/status/503')} answered 503")


async def test_custom_expect_status_is_accepted(step: Step, origin: Origin) -> None:
    output = await step({"url": origin.url("/status/404"), "expect_status": [404, 410]})
    assert output["status"] == 404
    error = await step.fails({"url": origin.url("/json"), "expect_status": [201]})
    assert error.error_class == "HttpStatus"
    assert "answered 200" in error.message


async def test_error_messages_hold_no_secret_header_value_or_query(
    step: Step, origin: Origin
) -> None:
    error = await step.fails(
        {
            "url": origin.url(f"/status/500?api_key={SECRET}"),
            "headers": {"Authorization": f"Bearer {SECRET}", "X-Other": "header-value-xyz"},
        },
        secrets={"TOKEN": SECRET},
    )
    assert error.error_class == "HttpStatus"
    assert SECRET not in error.message
    assert "header-value-xyz" not in error.message
    assert "api_key" not in error.message
    assert "[redacted]" in error.message  # the body echoed it back: redacted in the excerpt


async def test_status_excerpt_is_short(step: Step, origin: Origin) -> None:
    error = await step.fails({"url": origin.url("/sized/900"), "expect_status": [201]})
    assert error.error_class == "HttpStatus"
    excerpt = error.message.split(": ", 1)[1]
    assert len(excerpt) <= answers.EXCERPT_CHARS + 3
    assert excerpt.startswith("xxxx")


# --- size ---------------------------------------------------------------------------------


async def test_body_at_the_limit_is_read(step: Step, origin: Origin) -> None:
    output = await step({"url": origin.url(f"/sized/{LIMIT}")})
    assert output["body"] == "x" * LIMIT


@pytest.mark.parametrize("path", [f"/sized/{LIMIT + 1}", f"/streamed/{LIMIT * 20}"])
async def test_larger_bodies_fail_with_response_too_large(
    step: Step, origin: Origin, path: str
) -> None:
    error = await step.fails({"url": origin.url(path)})
    assert error.error_class == "ResponseTooLarge"
    assert str(LIMIT) in error.message


# --- connections --------------------------------------------------------------------------


async def test_connection_refused_fails_with_http_error(step: Step) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    error = await step.fails({"url": f"http://127.0.0.1:{port}/x"})
    assert error.error_class == "HttpError"
    assert f"127.0.0.1:{port}" in error.message
    assert "Traceback" not in error.message


async def test_default_timeout_applies_without_a_deadline(origin: Origin) -> None:
    async for step in _step(allow_private=True, http_default_timeout=0.2):
        error = await step.fails({"url": origin.url("/slow")})
        assert error.error_class == "HttpError"
        assert "timed out after 0.2 s" in error.message
    origin.release.set()


# --- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/file", "file:///etc/passwd", "javascript:alert(1)", "/relative", "", 42],
)
async def test_only_http_and_https_urls_are_accepted(step: Step, url: Any) -> None:
    error = await step.fails({"url": url})
    assert error.error_class == "InvalidParameters"
    assert "url" in error.message


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ({"headers": {"X-Bad": {"nested": 1}}}, "header X-Bad"),
        ({"headers": {"X-Null": None}}, "not null"),
        ({"headers": {"X-Split": "a\r\nInjected: yes"}}, "line break"),
        ({"headers": {"Bad Name": "v"}}, "header name"),
        ({"headers": ["not", "a", "map"]}, "headers must be a map"),
        ({"query": {"list": [1, 2]}}, "query parameter list"),
        ({"method": "GE T"}, "method"),
        ({"expect_status": ["200"]}, "expect_status"),
        ({"expect_status": [99]}, "expect_status"),
    ],
)
async def test_parameters_that_cannot_be_sent_fail_clearly(
    step: Step, origin: Origin, parameters: dict[str, Any], fragment: str
) -> None:
    seen = len(origin.seen)
    error = await step.fails({"url": origin.url("/echo"), **parameters})
    assert error.error_class == "InvalidParameters"
    assert fragment in error.message
    assert "Injected" not in error.message
    assert len(origin.seen) == seen  # nothing was sent


# --- redirects: not followed --------------------------------------------------------------


async def test_redirects_are_not_followed(step: Step, origin: Origin) -> None:
    seen = len(origin.seen)
    error = await step.fails({"url": origin.url("/redirect")})
    assert error.error_class == "HttpStatus"
    assert "answered 302" in error.message
    assert "redirects are not followed" in error.message
    assert [r.path for r in origin.seen[seen:]] == ["/redirect"]


async def test_an_expected_redirect_is_the_output(step: Step, origin: Origin) -> None:
    output = await step({"url": origin.url("/redirect"), "expect_status": [302]})
    assert output["status"] == 302
    assert output["headers"]["location"] == "/json"


# --- SSRF guard ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "[::1]", "169.254.169.254", "0.0.0.0"],
)
async def test_private_destinations_are_refused(
    guarded_step: Step, origin: Origin, host: str
) -> None:
    seen = len(origin.seen)
    error = await guarded_step.fails({"url": f"http://{host}:{origin.port}/json"})
    assert error.error_class == "AddressNotAllowed"
    assert "resolves to a private address" in error.message
    assert "FLOWMESH_EXECUTOR_HTTP_ALLOW_PRIVATE=true" in error.message
    assert len(origin.seen) == seen


@pytest.mark.parametrize("host", ["127.1", "2130706433"])
async def test_non_canonical_numeric_hosts_are_refused(guarded_step: Step, host: str) -> None:
    error = await guarded_step.fails({"url": f"http://{host}/"})
    assert error.error_class == "InvalidParameters"
    assert "not a canonical IP address" in error.message


async def test_non_http_schemes_are_refused_by_the_guarded_session(guarded_step: Step) -> None:
    error = await guarded_step.fails({"url": "gopher://127.0.0.1:70/"})
    assert error.error_class == "InvalidParameters"


# --- secrets in messages: the URL as the node wrote it, never as sent -----------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]  # closed again: nothing listens there
    return port


@pytest.mark.parametrize(
    ("secret", "rewritten"),
    [
        ("tok3n?rest-of-secret", "tok3n"),  # cut at ?: the rest is the query
        ("part1#part2", "part1"),  # cut at #: the rest is the fragment
        ('p@ss w0rd/\u00fc"x', "p@ss%20w0rd/%C3%BC%22x"),  # percent-encoded
        ("a%41b", "aAb"),  # percent-decoded
        ("../../etc", "/etc"),  # dot segments resolved
    ],
)
async def test_a_secret_in_the_path_is_named_redacted_however_the_url_was_normalised(
    step: Step, secret: str, rewritten: str
) -> None:
    port = _closed_port()
    template = {"url": f"http://127.0.0.1:{port}/a/{{{{ secrets.API_KEY }}}}"}
    error = await step.fails_rendered(template, {"API_KEY": secret})
    assert error.error_class == "HttpError"
    assert error.message.startswith(f"GET http://127.0.0.1:{port}/a/[redacted]: cannot connect")
    assert rewritten not in error.message.removeprefix(f"GET http://127.0.0.1:{port}/a/")
    assert secret not in error.message


async def test_a_secret_in_the_host_is_named_redacted_even_lowercased(step: Step) -> None:
    secret = "SkLiveAbCdEf0123"
    template = {"url": "https://{{ secrets.API_KEY }}.invalid/x"}
    error = await step.fails_rendered(template, {"API_KEY": secret})
    assert error.error_class == "HttpError"
    assert error.message == (
        "GET https://[redacted].invalid/x: cannot resolve host [redacted].invalid"
    )


async def test_status_and_size_errors_name_the_url_redacted(step: Step, origin: Origin) -> None:
    answered = await step.fails_rendered(
        {"url": origin.url("/status/500/{{ secrets.K }}")}, {"K": 'p@ss w0rd/\u00fc"x'}
    )
    assert answered.error_class == "HttpStatus"
    assert answered.message.startswith(f"GET {origin.url('/status/500/[redacted]')} answered 500")
    too_large = await step.fails_rendered(
        {"url": origin.url(f"/sized/{LIMIT + 1}/{{{{ secrets.K }}}}")}, {"K": "tok3n?rest"}
    )
    assert too_large.error_class == "ResponseTooLarge"
    assert too_large.message == (
        f"GET {origin.url(f'/sized/{LIMIT + 1}/[redacted]')} answered a body over {LIMIT} bytes"
    )
