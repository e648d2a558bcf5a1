"""The action step alone (no registry): what a run's definition cannot reach once saved (an
action the run did not find, a pinned version of a built-in, an input the validator would
refuse, a tenant's own action), against the local Slack and webhook servers."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from flowmesh_executor.nodes import action
from flowmesh_executor.nodes.base import StepCall, StepError, StepServices
from flowmesh_executor.retry import NOT_RETRIED
from flowmesh_executor.run_actions import read_actions
from flowmesh_proto.action_library import builtin_action
from flowmesh_proto.actions import Action, ActionKey, ActionRequest, ActionResult, ActionSpec
from flowmesh_proto.connectors import Connector
from flowmesh_proto.workflow import ActionNode, ActionParameters, definition_from_builtins
from tests.integration.executor import action_apis as apis
from tests.integration.executor.stepkit import step_services, stored_connector

TOKEN = "st3p-t0ken-n0t-t0-be-seen"
NOW = datetime(2026, 12, 6, tzinfo=UTC)
SLACK = builtin_action("slack.post_message")

MINE = Action(
    name="crm.touch",
    version=3,
    builtin=False,
    spec=ActionSpec(
        description="Touches a contact.",
        input_schema={
            "type": "object",
            "properties": {"id": {"type": "integer"}},
            "required": ["id"],
        },
        request=ActionRequest(path="/touch/{{ input.id }}", body={"at": "now"}),
        result=ActionResult(
            output="response.body.received",
            failure="response.status == 202",
            message="'not yet: ' + (response.body.received ? 'received' : 'lost')",
        ),
    ),
)


@pytest_asyncio.fixture(loop_scope="session")
async def slack() -> AsyncIterator[apis.Api]:
    async for served in apis.served(apis.slack, TOKEN):
        yield served


@pytest_asyncio.fixture(loop_scope="session")
async def hooks() -> AsyncIterator[apis.Api]:
    async for served in apis.served(apis.webhook, TOKEN):
        yield served


@pytest_asyncio.fixture(loop_scope="session")
async def services() -> AsyncIterator[StepServices]:
    async with step_services() as made:
        yield made


def _connector(name: str, base_url: str, auth: dict[str, Any]) -> Connector:
    return stored_connector(name, base_url, auth)


async def _step(
    services: StepServices,
    connectors: list[Connector],
    actions: dict[ActionKey, Action],
    **parameters: Any,
) -> Any:
    node = ActionNode(id="act", parameters=msgspec.convert(parameters, ActionParameters))
    call = StepCall(
        tenant="acme",
        run_id="run-1",
        workflow_id="wf-1",
        version=1,
        node=node,
        attempt=1,
        idempotency_key="run-1:act",
        parameters=msgspec.to_builtins(node.parameters),
        variables={},
        started_at=NOW,
        deadline=None,
        secrets={"TOKEN": TOKEN},
        connectors={c.name: c for c in connectors},
        actions=actions,
    )
    return await action.run(call, services)


async def _fails(*args: Any, **parameters: Any) -> StepError:
    with pytest.raises(StepError) as caught:
        await _step(*args, **parameters)
    return caught.value


def _slack(api: apis.Api) -> Connector:
    return _connector("slack", f"{api.base}/api", {"kind": "bearer", "secret": "TOKEN"})


async def test_an_action_the_run_did_not_find_fails_never_retried(
    services: StepServices, slack: apis.Api
) -> None:
    assert SLACK is not None
    given = {"channel": "C1", "text": "x"}
    definition = definition_from_builtins(
        {
            "name": "t",
            "nodes": [
                {
                    "id": "act",
                    "type": "action",
                    "parameters": {
                        "action": "slack.post_message",
                        "connector": "slack",
                        "version": 2,
                        "input": given,
                    },
                }
            ],
            "edges": [],
        }
    )

    async def never(get: Any) -> Action:
        raise AssertionError("a built-in's name is never asked of the registry")

    actions = await read_actions(definition, never)
    assert actions == {}
    error = await _fails(
        services,
        [_slack(slack)],
        actions,
        action="slack.post_message",
        connector="slack",
        version=2,
        input=given,
    )
    assert (error.error_class, error.message) == (
        "ActionNotFound",
        "action slack.post_message version 2 does not exist",
    )
    error = await _fails(
        services, [_slack(slack)], {}, action="crm.gone", connector="slack", input=given
    )
    assert error.message == "action crm.gone does not exist"
    assert {"ActionNotFound", "ActionInputInvalid", "ActionTemplateError"} <= NOT_RETRIED
    assert slack.seen == []


async def test_an_input_the_schema_refuses_names_its_first_problems(
    services: StepServices, slack: apis.Api
) -> None:
    assert SLACK is not None
    actions: dict[ActionKey, Action] = {("slack.post_message", None): SLACK}
    given = {"channel": "", "icon": ":)", "unfurl_links": "yes", "thread_ts": 1, "x": 1}
    error = await _fails(
        services,
        [_slack(slack)],
        actions,
        action="slack.post_message",
        connector="slack",
        input=given,
    )
    assert error.error_class == "ActionInputInvalid"
    assert error.message.startswith(
        "action slack.post_message: the input does not match its schema: input"
    )
    assert error.message.count("input") == 4 and "more)" in error.message  # the first three
    assert slack.seen == []


async def test_a_missing_connector_fails_naming_it(services: StepServices, slack: apis.Api) -> None:
    assert SLACK is not None
    actions: dict[ActionKey, Action] = {("slack.post_message", None): SLACK}
    error = await _fails(
        services,
        [],
        actions,
        action="slack.post_message",
        connector="gone",
        input={"channel": "C1", "text": "x"},
    )
    assert error.error_class == "ConnectorNotFound" and "gone" in error.message


async def test_a_tenants_action_pinned_at_a_version(
    services: StepServices, hooks: apis.Api
) -> None:
    connector = _connector("mine", f"{hooks.base}/hooks", {"kind": "none"})
    actions: dict[ActionKey, Action] = {("crm.touch", 3): MINE}
    # the webhook server answers 202 {received: true}: this action's failure
    error = await _fails(
        services,
        [connector],
        actions,
        action="crm.touch",
        connector="mine",
        version=3,
        input={"id": 7},
    )
    assert (error.error_class, error.message) == (
        "ActionFailed",
        "action crm.touch: not yet: received",
    )
    assert [path for _, path, _, _ in hooks.seen] == ["/hooks/touch/7"]
    assert hooks.seen[0][3] == {"at": "now"}
    assert hooks.seen[0][2]["Idempotency-Key"] == "run-1:act"
    error = await _fails(
        services, [connector], {}, action="crm.touch", connector="mine", input={"id": 7}
    )
    assert error.error_class == "ActionNotFound"  # only version 3 was read


async def test_a_template_the_input_cannot_feed_is_a_template_error(
    services: StepServices, hooks: apis.Api
) -> None:
    broken = Action(
        name="crm.broken",
        version=1,
        builtin=False,
        spec=ActionSpec(
            description="Reads what its input does not hold.",
            input_schema={"type": "object"},
            request=ActionRequest(path="/x", body={"n": "{{ input.missing + 1 }}"}),
        ),
    )
    connector = _connector("mine", f"{hooks.base}/hooks", {"kind": "none"})
    error = await _fails(
        services,
        [connector],
        {("crm.broken", None): broken},
        action="crm.broken",
        connector="mine",
        input={},
    )
    assert error.error_class == "ActionTemplateError"
    assert error.message.startswith("action crm.broken: its request's body cannot be rendered")
    assert hooks.seen == []


async def test_the_result_reads_the_answer_with_the_credentials_redacted(
    services: StepServices,
) -> None:
    """An API that echoes the request's Authorization header (many do, in errors or a
    whoami): the action's result expressions may compute from the answer (``bytes()`` is
    base64 in the output, ``startsWith`` an oracle), which exact-value redaction of the
    output could not catch; they must only ever see the credential as redacted."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"auth": request.headers.get("Authorization", "")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        leaky = Action(
            name="crm.whoami",
            version=1,
            builtin=False,
            spec=ActionSpec(
                description="Echoes.",
                input_schema={"type": "object"},
                request=ActionRequest(method="GET", path="/whoami"),
                result=ActionResult(
                    output="{'b64': bytes(response.body.auth),"
                    " 'first': response.body.auth.startsWith('Bearer st3p')}",
                    failure="response.body.auth.startsWith('Bearer st3p')",
                    message="string(bytes(response.body.auth)) + ' seen'",
                ),
            ),
        )
        connector = _connector(
            "mine", f"http://127.0.0.1:{server.port}", {"kind": "bearer", "secret": "TOKEN"}
        )
        redacted = base64.b64encode(b"Bearer [redacted]").decode()
        output = await _step(
            services,
            [connector],
            {("crm.whoami", None): leaky},
            action="crm.whoami",
            connector="mine",
            input={},
        )
        assert output == {"b64": redacted, "first": False}
        assert base64.b64encode(f"Bearer {TOKEN}".encode()).decode() not in str(output)
    finally:
        await server.close()


async def test_a_schema_too_costly_to_compile_fails_the_step_and_sends_nothing(
    services: StepServices, hooks: apis.Api
) -> None:
    """A version stored before the patterns' cost was bounded: refused before compiling
    (each such pattern takes ~45 ms to compile, on a thread, never on the loop)."""
    costly = Action(
        name="crm.costly",
        version=1,
        builtin=False,
        spec=ActionSpec(
            description="Its patterns take seconds to compile.",
            input_schema={
                "type": "object",
                "properties": {f"p{i}": {"pattern": rf"\p{{L}}{{200}}{i}"} for i in range(100)},
            },
            request=ActionRequest(path="/x"),
        ),
    )
    connector = _connector("mine", f"{hooks.base}/hooks", {"kind": "none"})
    before = len(hooks.seen)
    error = await _fails(
        services,
        [connector],
        {("crm.costly", None): costly},
        action="crm.costly",
        connector="mine",
        input={},
    )
    assert error.error_class == "ActionInputInvalid"
    assert "its input schema cannot be used: its patterns would take too long" in error.message
    assert len(hooks.seen) == before
