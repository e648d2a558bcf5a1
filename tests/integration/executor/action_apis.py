"""Local servers speaking the APIs the built-in actions call, as those APIs document them.

Each checks what its API documents of a request (method, path, credential header, media
type, JSON body shape: the members it knows, no null member it would reject or read
wrongly) and answers as the API does, errors included. A request the API would not take
as sent is recorded in ``Api.problems`` and answered 400, so a test sees both.

- Slack Web API ``chat.postMessage`` (https://api.slack.com/methods/chat.postMessage):
  ``200 {ok: false, error}`` for failures;
- Postmark ``POST /email`` (https://postmarkapp.com/developer/api/email-api): 401 and
  ``422 {ErrorCode, Message}``;
- GitHub REST "Create an issue" (https://docs.github.com/en/rest/issues/issues): 201, 401,
  404 and ``422 {message: "Validation Failed", errors}``;
- a REST upsert resource (``PUT /{collection}/{id}``, 201 created, 200 replaced), plain
  JSON or JSON:API (https://jsonapi.org/format/: the media type without parameters in
  both ``Content-Type`` and ``Accept``, a ``{data: {type, id, attributes}}`` document,
  ``{errors: [{status, title, detail}]}`` answers), behind an OAuth2 token endpoint;
- OpenAI ``POST /chat/completions`` (https://platform.openai.com/docs/api-reference/chat):
  200 with choices, 401 and 429 ``{error: {message, type, code}}``;
- a JSON webhook: 2xx, or 500 on ``/fail``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SLACK_MEMBERS = {"channel", "text", "blocks", "thread_ts", "unfurl_links", "unfurl_media"}
POSTMARK_MEMBERS = {
    "From", "To", "Cc", "Bcc", "Subject", "Tag", "HtmlBody", "TextBody", "ReplyTo",
    "Headers", "TrackOpens", "TrackLinks", "Metadata", "Attachments", "MessageStream",
}  # fmt: skip
GITHUB_MEMBERS = {"title", "body", "assignee", "milestone", "labels", "assignees", "type"}
OPENAI_MEMBERS = {
    "model", "messages", "temperature", "max_tokens", "max_completion_tokens",
    "response_format", "user", "top_p", "n", "stop", "seed",
}  # fmt: skip
JSON_API = "application/vnd.api+json"


@dataclass
class Api:
    """One local API: where it listens, what it was asked, what it refused."""

    token: str
    base: str = ""
    seen: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def requests(self, path: str) -> list[tuple[str, str, dict[str, str], Any]]:
        return [r for r in self.seen if r[1] == path]


class Refused(Exception):
    """The request is not one the API takes as sent."""


def _json_body(raw: bytes, members: set[str], *, required: set[str]) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise Refused("the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refused("the body is not a JSON object")
    unknown = set(body) - members
    if unknown:
        raise Refused(f"unknown members {sorted(unknown)}")
    nulls = sorted(k for k, v in body.items() if v is None)
    if nulls:
        raise Refused(f"null members {nulls}")
    missing = required - set(body)
    if missing:
        raise Refused(f"missing members {sorted(missing)}")
    return body


def _media_type(request: web.Request, wanted: str) -> None:
    if request.content_type != wanted:
        raise Refused(f"content type {request.headers.get('Content-Type')!r}, not {wanted}")


def _checked(api: Api, handle: Callable[[web.Request, bytes], Awaitable[web.Response]]) -> Handler:
    async def checked(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        api.seen.append((request.method, request.path, dict(request.headers), body))
        try:
            return await handle(request, raw)
        except Refused as exc:
            api.problems.append(f"{request.method} {request.path}: {exc}")
            return web.json_response({"refused": str(exc)}, status=400)

    return checked


def slack(api: Api) -> web.Application:
    async def post_message(request: web.Request, raw: bytes) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {api.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        _media_type(request, "application/json")
        if request.charset not in (None, "utf-8"):
            raise Refused("charset is not utf-8")
        body = _json_body(raw, SLACK_MEMBERS, required={"channel"})
        if "text" not in body and "blocks" not in body:
            return web.json_response({"ok": False, "error": "no_text"})
        if body["channel"] == "C404":
            return web.json_response({"ok": False, "error": "channel_not_found"})
        ts = "1733450000.000100"
        message = {"type": "message", "text": body.get("text", ""), "ts": ts}
        return web.json_response(
            {"ok": True, "channel": body["channel"], "ts": ts, "message": message}
        )

    app = web.Application()
    app.router.add_post("/api/chat.postMessage", _checked(api, post_message))
    return app


def postmark(api: Api) -> web.Application:
    async def email(request: web.Request, raw: bytes) -> web.Response:
        if request.headers.get("X-Postmark-Server-Token") != api.token:
            message = "Request does not contain a valid Server token."
            return web.json_response({"ErrorCode": 10, "Message": message}, status=401)
        if request.headers.get("Accept") != "application/json":
            raise Refused("Accept is not application/json")
        _media_type(request, "application/json")
        body = _json_body(raw, POSTMARK_MEMBERS, required={"From", "To"})
        if "TextBody" not in body and "HtmlBody" not in body:
            message = "Provide either email TextBody or HtmlBody or both."
            return web.json_response({"ErrorCode": 300, "Message": message}, status=422)
        if "@" not in body["To"]:
            message = "Invalid email request"
            return web.json_response({"ErrorCode": 300, "Message": message}, status=422)
        return web.json_response(
            {
                "To": body["To"],
                "SubmittedAt": "2026-12-06T02:00:00.0000000-05:00",
                "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
                "ErrorCode": 0,
                "Message": "OK",
            }
        )

    app = web.Application()
    app.router.add_post("/email", _checked(api, email))
    return app


def github(api: Api) -> web.Application:
    docs = "https://docs.github.com/rest/issues/issues#create-an-issue"

    async def create_issue(request: web.Request, raw: bytes) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {api.token}":
            return web.json_response(
                {"message": "Bad credentials", "documentation_url": docs}, status=401
            )
        if request.headers.get("Accept") != "application/vnd.github+json":
            raise Refused("Accept is not application/vnd.github+json")
        if request.headers.get("X-GitHub-Api-Version") != "2022-11-28":
            raise Refused("no X-GitHub-Api-Version 2022-11-28")
        if not request.headers.get("User-Agent"):
            raise Refused("no User-Agent")  # GitHub refuses requests without one
        _media_type(request, "application/json")
        body = _json_body(raw, GITHUB_MEMBERS, required={"title"})
        owner, repo = request.match_info["owner"], request.match_info["repo"]
        if (owner, repo) != ("acme", "orders"):
            return web.json_response(
                {"message": "Not Found", "documentation_url": docs}, status=404
            )
        if "nobody" in body.get("assignees", []):
            errors = [
                {"value": "nobody", "resource": "Issue", "field": "assignees", "code": "invalid"}
            ]
            answer = {"message": "Validation Failed", "errors": errors, "documentation_url": docs}
            return web.json_response(answer, status=422)
        number = 1347
        return web.json_response(
            {
                "id": 1,
                "node_id": "MDU6SXNzdWUx",
                "url": f"https://api.github.com/repos/{owner}/{repo}/issues/{number}",
                "html_url": f"https://github.com/{owner}/{repo}/issues/{number}",
                "number": number,
                "state": "open",
                "title": body["title"],
                "body": body.get("body"),
                "labels": [{"name": name} for name in body.get("labels", [])],
            },
            status=201,
        )

    app = web.Application()
    app.router.add_post("/repos/{owner}/{repo}/issues", _checked(api, create_issue))
    return app


def rest(api: Api, access: str) -> web.Application:
    """``api.token`` is the OAuth2 client secret; ``access`` the token it is given."""
    records: dict[tuple[str, str], Any] = {}

    async def token(request: web.Request, raw: bytes) -> web.Response:
        form = dict(await request.post())
        if form.get("grant_type") != "client_credentials" or form.get("client_secret") != api.token:
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response(
            {"access_token": access, "token_type": "Bearer", "expires_in": 3600}
        )

    async def upsert(request: web.Request, raw: bytes) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {access}":
            return web.json_response({"message": "unauthorized"}, status=401)
        key = (request.match_info["collection"], request.match_info["id"])
        created = key not in records
        if request.content_type == JSON_API:
            return _jsonapi(request, raw, key, created)
        _media_type(request, "application/json")
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise Refused("the record is not an object")
        if body.get("email") == "not-an-email":
            return web.json_response({"message": "email is not valid"}, status=422)
        records[key] = body
        return web.json_response({"id": key[1], **body}, status=201 if created else 200)

    def _jsonapi(
        request: web.Request, raw: bytes, key: tuple[str, str], created: bool
    ) -> web.Response:
        if request.headers.get("Content-Type") != JSON_API:
            return web.Response(status=415)  # JSON:API: no media type parameters
        if request.headers.get("Accept") != JSON_API:
            return web.Response(status=406)
        document = json.loads(raw)
        if set(document) != {"data"} or set(document["data"]) != {"type", "id", "attributes"}:
            raise Refused(f"not a JSON:API resource document: {sorted(document)}")
        data = document["data"]
        if (data["type"], data["id"]) != key:
            return web.json_response(
                {"errors": [{"status": "409", "title": "Conflict"}]},
                status=409,
                content_type=JSON_API,
            )
        if data["attributes"].get("email") == "not-an-email":
            error = {
                "status": "422",
                "title": "Invalid Attribute",
                "detail": "email is not valid",
                "source": {"pointer": "/data/attributes/email"},
            }
            return web.json_response({"errors": [error]}, status=422, content_type=JSON_API)
        records[key] = data["attributes"]
        return web.json_response(
            {"data": data}, status=201 if created else 200, content_type=JSON_API
        )

    app = web.Application()
    app.router.add_post("/oauth/token", _checked(api, token))
    app.router.add_put("/api/{collection}/{id}", _checked(api, upsert))
    return app


def openai(api: Api) -> web.Application:
    async def completions(request: web.Request, raw: bytes) -> web.Response:
        given = request.headers.get("Authorization", "")
        if given != f"Bearer {api.token}":
            key = given.removeprefix("Bearer ")
            error = {
                # as the API words it (it echoes the key it was given)
                "message": f"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
            return web.json_response({"error": error}, status=401)
        _media_type(request, "application/json")
        body = _json_body(raw, OPENAI_MEMBERS, required={"model", "messages"})
        if body["model"] == "busy-model":
            error = {
                "message": "Rate limit reached for requests",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
            return web.json_response({"error": error}, status=429)
        last = body["messages"][-1]["content"]
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1733450000,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": f"echo: {last}",
                            "refusal": None,
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", _checked(api, completions))
    return app


def webhook(api: Api) -> web.Application:
    async def hook(request: web.Request, raw: bytes) -> web.Response:
        _media_type(request, "application/json")
        json.loads(raw)  # a JSON document, whatever its shape
        if request.path == "/hooks/fail":
            return web.Response(status=500, text="boom: the receiver crashed")
        return web.json_response({"received": True}, status=202)

    app = web.Application()
    app.router.add_post("/hooks/{tail:.*}", _checked(api, hook))
    app.router.add_post("/hooks", _checked(api, hook))
    return app


async def serve(app: web.Application, api: Api) -> AsyncIterator[Api]:
    """Serve ``app`` on loopback while the caller iterates; ``api.base`` is where."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield api
    finally:
        await runner.cleanup()


async def served(
    make: Callable[..., web.Application], token: str, *extra: str
) -> AsyncIterator[Api]:
    """The API ``make`` builds (given an :class:`Api` expecting ``token``, then ``extra``),
    served on loopback while the caller iterates: each test module's fixture in one line."""
    api = Api(token)
    async for running in serve(make(api, *extra), api):
        yield running
