"""Runs of the built-in actions (DESIGN section 16) through a real executor, each against a
local server speaking its API as documented (tests/integration/executor/action_apis.py):
the request the API wants, the documented output, each documented error as a clear step
error, and no credential in anything the run records."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import pytest_asyncio
import structlog

from flowmesh_proto import registry as r
from flowmesh_proto.connectors import ConnectorPut, ConnectorSpec
from flowmesh_proto.runfold import RunState
from tests.integration.executor import action_apis as apis
from tests.integration.executor.runs import Runs

TOKEN = "act10n-t0ken-n0t-t0-be-seen"
WRONG = "wr0ng-t0ken-n0t-t0-be-seen"
ACCESS = "act10n-0auth2-access-value"


@pytest_asyncio.fixture(loop_scope="session")
async def slack() -> AsyncIterator[apis.Api]:
    async for served in apis.served(apis.slack, TOKEN):
        yield served


@pytest_asyncio.fixture(loop_scope="session")
async def postmark() -> AsyncIterator[apis.Api]:
    async for served in apis.served(apis.postmark, TOKEN):
        yield served


@pytest_asyncio.fixture(loop_scope="session")
async def github() -> AsyncIterator[apis.Api]:
    async for served in apis.served(apis.github, TOKEN):
        yield served


@pytest_asyncio.fixture(loop_scope="session")
async def rest() -> AsyncIterator[apis.Api]:
    async for served in apis.served(apis.rest, TOKEN, ACCESS):
        yield served


@pytest_asyncio.fixture(loop_scope="session")
async def openai() -> AsyncIterator[apis.Api]:
    async for served in apis.served(apis.openai, TOKEN):
        yield served


@pytest_asyncio.fixture(loop_scope="session")
async def hooks() -> AsyncIterator[apis.Api]:
    async for served in apis.served(apis.webhook, TOKEN):
        yield served


async def _secrets(runs: Runs) -> None:
    await runs.api("secret_put", r.SecretPut(name="API_TOKEN", value=TOKEN))
    await runs.api("secret_put", r.SecretPut(name="WRONG_TOKEN", value=WRONG))


async def _connector(runs: Runs, name: str, base_url: str, auth: dict[str, Any]) -> None:
    spec = msgspec.convert({"base_url": base_url, "auth": auth}, ConnectorSpec)
    await runs.api("connector_put", ConnectorPut(name=name, spec=spec))


def _bearer(secret: str = "API_TOKEN") -> dict[str, Any]:
    return {"kind": "bearer", "secret": secret}


def _node(node_id: str, action: str, connector: str, input: Any, **extra: Any) -> dict[str, Any]:
    parameters = {"action": action, "connector": connector, "input": input}
    return {"id": node_id, "type": "action", "parameters": parameters, **extra}


def _go_on(node: dict[str, Any]) -> dict[str, Any]:
    return {**node, "on_error": "continue"}


async def _run(runs: Runs, name: str, nodes: list[dict[str, Any]], data: Any = None) -> RunState:
    """Run the nodes one after the other; every credential stays out of the events."""
    edges = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]
    state = await runs.run({"name": name, "nodes": nodes, "edges": edges}, data)
    assert state.ref is not None
    raw = b"".join(msgspec.json.encode(e) for e in await runs.events(state.ref.run_id))
    for credential in (TOKEN, WRONG, ACCESS):
        assert credential.encode() not in raw, credential
    return state


def _failed(state: RunState, node_id: str) -> tuple[str | None, str]:
    node = state.nodes[node_id]
    assert node.status == "failed", (node_id, node)
    return node.error_class, node.error or ""


async def test_slack_post_message(runs: Runs, slack: apis.Api) -> None:
    await _secrets(runs)
    await _connector(runs, "slack", f"{slack.base}/api", _bearer())
    nodes = [
        _node(
            "post", "slack.post_message", "slack", {"channel": "C1", "text": "{{ trigger.data.t }}"}
        ),
        _go_on(_node("lost", "slack.post_message", "slack", {"channel": "C404", "text": "x"})),
        _node(
            "thread",
            "slack.post_message",
            "slack",
            {
                "channel": "C1",
                "blocks": [{"type": "divider"}],
                "thread_ts": "1.2",
                "unfurl_links": False,
            },
        ),
    ]
    # a template in the run's data is text to send, never rendered again
    state = await _run(runs, "slack", nodes, {"t": "shipped {{ secrets.API_TOKEN }}"})
    assert slack.problems == []
    assert state.status == "succeeded", state.error
    assert state.nodes["post"].output == {"channel": "C1", "ts": "1733450000.000100"}
    assert _failed(state, "lost") == (
        "ActionFailed",
        "action slack.post_message: Slack answered channel_not_found",
    )
    sent = [body for _, _, _, body in slack.requests("/api/chat.postMessage")]
    assert sent == [
        # no null member for what was not given
        {"channel": "C1", "text": "shipped {{ secrets.API_TOKEN }}"},
        {"channel": "C404", "text": "x"},
        {
            "channel": "C1",
            "blocks": [{"type": "divider"}],
            "thread_ts": "1.2",
            "unfurl_links": False,
        },
    ]
    assert {h["Authorization"] for _, _, h, _ in slack.seen} == {f"Bearer {TOKEN}"}


async def test_email_send(runs: Runs, postmark: apis.Api) -> None:
    await _secrets(runs)
    header = {"kind": "header", "name": "X-Postmark-Server-Token"}
    await _connector(runs, "postmark", postmark.base, {**header, "secret": "API_TOKEN"})
    await _connector(runs, "postmark-bad", postmark.base, {**header, "secret": "WRONG_TOKEN"})
    mail = {
        "from": "orders@example.com",
        "to": "ann@example.com",
        "subject": "Shipped",
        "text": "On its way",
    }
    nodes = [
        _node("sent", "email.send", "postmark", mail),
        _go_on(_node("invalid", "email.send", "postmark", {**mail, "to": "nobody"})),
        _go_on(_node("unauthorised", "email.send", "postmark-bad", mail)),
    ]
    state = await _run(runs, "email", nodes)
    assert postmark.problems == []
    assert state.nodes["sent"].output == {
        "message_id": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
        "submitted_at": "2026-12-06T02:00:00.0000000-05:00",
        "to": "ann@example.com",
    }
    assert _failed(state, "invalid") == (
        "HttpStatus",
        "action email.send: the email API answered 300: Invalid email request",
    )
    assert _failed(state, "unauthorised") == (
        "HttpStatus",
        "action email.send: the email API answered 10: "
        "Request does not contain a valid Server token.",
    )
    body = postmark.requests("/email")[0][3]
    assert body == {
        "From": "orders@example.com",
        "To": "ann@example.com",
        "Subject": "Shipped",
        "TextBody": "On its way",
    }


async def test_github_create_issue(runs: Runs, github: apis.Api) -> None:
    await _secrets(runs)
    await _connector(runs, "github", github.base, _bearer())
    issue = {"owner": "acme", "repo": "orders", "title": "Order 7 failed", "labels": ["ops"]}
    nodes = [
        _node("opened", "github.create_issue", "github", issue),
        _go_on(
            _node("invalid", "github.create_issue", "github", {**issue, "assignees": ["nobody"]})
        ),
        _go_on(_node("missing", "github.create_issue", "github", {**issue, "repo": "gone"})),
        # the owner's pattern allows dots: the path rule still keeps the request on the API
        _go_on(
            _node(
                "escape",
                "github.create_issue",
                "github",
                {**issue, "owner": "{{ trigger.data.owner }}"},
                retry={"max_attempts": 3},
            )
        ),
    ]
    state = await _run(runs, "github", nodes, {"owner": ".."})
    assert github.problems == []
    assert state.nodes["opened"].output == {
        "number": 1347,
        "id": 1,
        "url": "https://github.com/acme/orders/issues/1347",
    }
    assert _failed(state, "invalid") == (
        "HttpStatus",
        "action github.create_issue: GitHub answered 422: Validation Failed (assignees: invalid)",
    )
    assert _failed(state, "missing") == (
        "HttpStatus",
        "action github.create_issue: GitHub answered 404: Not Found",
    )
    error_class, message = _failed(state, "escape")
    assert error_class == "ConnectorRefused" and "'..'" in message
    assert state.nodes["escape"].attempt == 1  # never retried
    paths = [path for _, path, _, _ in github.seen]
    assert paths == ["/repos/acme/orders/issues"] * 2 + [
        "/repos/acme/gone/issues"
    ]  # nothing for ..
    assert github.seen[0][3] == {"title": "Order 7 failed", "labels": ["ops"]}


async def test_rest_upsert_as_json_and_json_api_through_oauth2(runs: Runs, rest: apis.Api) -> None:
    await _secrets(runs)
    auth = {
        "kind": "oauth2_client_credentials",
        "token_url": f"{rest.base}/oauth/token",
        "client_id": "flowmesh",
        "client_secret": "API_TOKEN",
    }
    await _connector(runs, "crm", f"{rest.base}/api", auth)
    record = {
        "collection": "contacts",
        "id": "7",
        "record": {"email": "ann@example.com", "note": None},
    }
    jsonapi = {**record, "id": "8", "format": "jsonapi"}
    bad = {"email": "not-an-email"}
    nodes = [
        _node("created", "rest.upsert", "crm", record),
        _node("replaced", "rest.upsert", "crm", record),
        _node("document", "rest.upsert", "crm", jsonapi),
        _go_on(_node("refused", "rest.upsert", "crm", {**jsonapi, "record": bad})),
        _go_on(_node("refused_plain", "rest.upsert", "crm", {**record, "record": bad})),
    ]
    state = await _run(runs, "rest", nodes)
    assert rest.problems == []
    assert state.nodes["created"].output == {
        "status": 201,
        "created": True,
        "body": {"id": "7", "email": "ann@example.com", "note": None},  # the null is kept
    }
    assert state.nodes["replaced"].output["status"] == 200
    assert state.nodes["replaced"].output["created"] is False
    document = state.nodes["document"].output
    assert document["created"] is True
    assert document["body"] == {
        "data": {
            "type": "contacts",
            "id": "8",
            "attributes": {"email": "ann@example.com", "note": None},
        }
    }
    assert _failed(state, "refused") == (
        "HttpStatus",
        "action rest.upsert: the API answered 422: email is not valid",
    )
    assert _failed(state, "refused_plain") == (
        "HttpStatus",
        "action rest.upsert: the API answered 422: email is not valid",
    )
    sent = rest.requests("/api/contacts/8")[0]
    assert sent[2]["Content-Type"] == sent[2]["Accept"] == apis.JSON_API
    assert {h["Authorization"] for _, p, h, _ in rest.seen if p != "/oauth/token"} == {
        f"Bearer {ACCESS}"
    }


async def test_openai_chat_completion(runs: Runs, openai: apis.Api) -> None:
    await _secrets(runs)
    await _connector(runs, "openai", f"{openai.base}/v1", _bearer())
    await _connector(runs, "openai-bad", f"{openai.base}/v1", _bearer("WRONG_TOKEN"))
    ask = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi {{ trigger.data.n }}"}],
        "temperature": 0,
        "max_completion_tokens": 50,
    }
    nodes = [
        _node("answered", "openai.chat_completion", "openai", ask),
        _go_on(_node("busy", "openai.chat_completion", "openai", {**ask, "model": "busy-model"})),
        _go_on(_node("unauthorised", "openai.chat_completion", "openai-bad", ask)),
    ]
    state = await _run(runs, "openai", nodes, {"n": 3})
    assert openai.problems == []
    assert state.nodes["answered"].output == {
        "content": "echo: hi 3",
        "finish_reason": "stop",
        "model": "gpt-4o-mini",
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }
    assert _failed(state, "busy") == (
        "HttpStatus",
        "action openai.chat_completion: the model API answered 429: "
        "Rate limit reached for requests",
    )
    error_class, message = _failed(state, "unauthorised")
    assert error_class == "HttpStatus"
    assert message.startswith(
        "action openai.chat_completion: the model API answered 401: "
        "Incorrect API key provided: [redacted]"
    )
    assert openai.seen[0][3] == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi 3"}],
        "temperature": 0,
        "max_completion_tokens": 50,
    }


async def test_webhook_post_and_a_map_of_actions(runs: Runs, hooks: apis.Api) -> None:
    await _connector(runs, "hooks", f"{hooks.base}/hooks", {"kind": "none"})
    nodes = [
        _node(
            "posted",
            "webhook.post",
            "hooks",
            {
                "path": "/orders",
                "payload": {"id": "{{ trigger.data.id }}", "gone": None},
                "event": "order",
            },
        ),
        _go_on(
            _node(
                "crashed",
                "webhook.post",
                "hooks",
                {"path": "/fail", "payload": [1]},
                retry={"max_attempts": 2, "backoff": "fixed", "initial": "PT0.01S"},
            )
        ),
        {
            "id": "each",
            "type": "map",
            "parameters": {
                "items": "trigger.data.items",
                "node": {
                    "type": "action",
                    "parameters": {
                        "action": "webhook.post",
                        "connector": "hooks",
                        "input": {"payload": {"item": "{{ item }}", "index": "{{ index }}"}},
                    },
                },
            },
        },
    ]
    state = await _run(runs, "webhook", nodes, {"id": 7, "items": ["a", "b"]})
    assert hooks.problems == []
    assert state.nodes["posted"].output == {"status": 202, "body": {"received": True}}
    error_class, message = _failed(state, "crashed")
    assert (error_class, message) == (
        "HttpStatus",
        f"action webhook.post: POST {hooks.base}/hooks/fail answered 500: "
        "boom: the receiver crashed",
    )
    assert state.nodes["crashed"].attempt == 2  # an answer's failure follows the retry policy
    assert state.nodes["each"].output == [{"status": 202, "body": {"received": True}}] * 2
    posted = hooks.requests("/hooks/orders")[0]
    assert posted[3] == {"id": 7, "gone": None} and posted[2]["X-Flowmesh-Event"] == "order"
    assert sorted(body["index"] for _, p, _, body in hooks.seen if p == "/hooks/") == [0, 1]
    keys = {h["Idempotency-Key"] for _, p, h, _ in hooks.seen if p == "/hooks/"}
    assert keys == {f"{state.ref.run_id}:each[0]", f"{state.ref.run_id}:each[1]"}  # type: ignore[union-attr]


async def test_an_input_breaking_the_schema_at_run_time_sends_nothing(
    runs: Runs, slack: apis.Api
) -> None:
    await _secrets(runs)
    await _connector(runs, "slack", f"{slack.base}/api", _bearer())
    retried = {"max_attempts": 3, "backoff": "fixed", "initial": "PT0.01S"}
    # valid when the workflow is saved (a template); a number where a string is wanted when run
    given = {"channel": "{{ trigger.data.n }}", "text": "x"}
    nodes = [_node("typed", "slack.post_message", "slack", given, retry=retried)]
    state = await _run(runs, "bad-input", nodes, {"n": 5})
    assert slack.seen == []  # the server was never asked
    error_class, message = _failed(state, "typed")
    assert error_class == "ActionInputInvalid"
    assert message == (
        "action slack.post_message: the input does not match its schema: "
        'input.channel: 5 is not of type "string"'
    )
    assert state.nodes["typed"].attempt == 1  # never retried


async def test_no_credential_reaches_the_logs(
    runs: Runs, rest: apis.Api, openai: apis.Api, capfd: pytest.CaptureFixture[str]
) -> None:
    """What the services log while actions succeed and fail (an OAuth2 token asked for and
    sent, a wrong key echoed by the API) names no credential."""
    await _secrets(runs)
    auth = {
        "kind": "oauth2_client_credentials",
        "token_url": f"{rest.base}/oauth/token",
        "client_id": "flowmesh",
        "client_secret": "API_TOKEN",
    }
    await _connector(runs, "crm-logged", f"{rest.base}/api", auth)
    await _connector(runs, "openai-logged", f"{openai.base}/v1", _bearer("WRONG_TOKEN"))
    ask = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    record = {"collection": "contacts", "id": "9", "record": {"email": "bo@example.com"}}
    nodes = [
        _node("upserted", "rest.upsert", "crm-logged", record),
        _go_on(_node("refused", "openai.chat_completion", "openai-logged", ask)),
    ]
    capfd.readouterr()  # only what this run makes the services log
    structlog.get_logger("flowmesh.tests").warning("logs.captured", marker="m4rk3r")
    state = await _run(runs, "logged", nodes)
    assert state.nodes["upserted"].status == "succeeded"
    assert state.nodes["refused"].status == "failed"
    logged = "".join(capfd.readouterr())
    assert "m4rk3r" in logged  # the services' log lines are where this test reads
    for credential in (TOKEN, WRONG, ACCESS):
        assert credential not in logged, credential
