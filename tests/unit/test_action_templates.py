"""An action's templates applied: the request from the input, the answer into the output or
the step's error (flowmesh_executor.nodes.action_templates; pure)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flowmesh_executor.nodes.action_templates import (
    MAX_MESSAGE_CHARS,
    read_answer,
    render_request,
)
from flowmesh_executor.nodes.base import StepError
from flowmesh_proto.action_library import builtin_action
from flowmesh_proto.actions import ActionRequest, ActionResult
from flowmesh_shared.expressions import Meter

WHERE = "POST https://api.example.com/x"


def _spec(name: str) -> Any:
    action = builtin_action(name)
    assert action is not None
    return action.spec


def _read(result: ActionResult, answer: dict[str, Any], expect: list[int] | None = None) -> Any:
    return read_answer(
        "t.action",
        result,
        expect or [],
        answer,
        {"n": 1},
        where=WHERE,
        secrets=("s3cr3t-value",),
        meter=Meter(),
    )


def _answer(status: int, body: Any) -> dict[str, Any]:
    return {"status": status, "headers": {}, "body": body}


# --- rendering the request ---------------------------------------------------------------


def test_members_rendering_null_are_left_out_and_nested_nulls_kept() -> None:
    spec = _spec("slack.post_message")
    given = {"channel": "C1", "blocks": [{"type": "section", "text": None}]}
    rendered = render_request("slack.post_message", spec.request, given, Meter())
    assert rendered.body == {"channel": "C1", "blocks": [{"type": "section", "text": None}]}
    assert rendered.path == "/chat.postMessage" and rendered.method == "POST"


def test_a_header_rendering_null_is_left_out() -> None:
    spec = _spec("webhook.post")
    bare = render_request("webhook.post", spec.request, {"payload": {"a": 1}}, Meter())
    assert "X-Flowmesh-Event" not in bare.headers and bare.path == "/"
    named = render_request("webhook.post", spec.request, {"payload": [], "event": "e"}, Meter())
    assert named.headers["X-Flowmesh-Event"] == "e" and named.body == []


def test_maps_written_inside_the_body_lose_their_null_members_too() -> None:
    request = ActionRequest(
        path="/x",
        body={"outer": {"a": "{{ input.a }}", "b": "{{ null }}"}, "list": ["{{ null }}"]},
    )
    rendered = render_request("t", request, {"a": {"k": None}}, Meter())
    assert rendered.body == {"outer": {"a": {"k": None}}, "list": [None]}


def test_an_input_string_holding_a_template_is_sent_as_it_is() -> None:
    spec = _spec("github.create_issue")
    given = {
        "owner": "o",
        "repo": "r",
        "title": "{{ secrets.GITHUB_TOKEN }}",
        "body": "{{ 1 + 1 }}",
    }
    rendered = render_request("github.create_issue", spec.request, given, Meter())
    assert rendered.body == {"title": "{{ secrets.GITHUB_TOKEN }}", "body": "{{ 1 + 1 }}"}
    assert rendered.path == "/repos/o/r/issues"


def test_a_template_reads_input_only() -> None:
    request = ActionRequest(path="/{{ trigger.data.id }}")
    with pytest.raises(StepError) as raised:
        render_request("t.x", request, {}, Meter())
    assert raised.value.error_class == "ActionTemplateError"
    assert "action t.x" in raised.value.message and "path" in raised.value.message


def test_a_path_that_is_no_string_is_refused() -> None:
    with pytest.raises(StepError) as raised:
        render_request("t.x", ActionRequest(path="{{ input.n }}"), {"n": 3}, Meter())
    assert raised.value.error_class == "ActionTemplateError"
    assert "int, not a string" in raised.value.message


def test_an_expensive_template_fails_on_the_budget() -> None:
    request = ActionRequest(path="/", body="{{ input.l.map(a, input.l.map(b, a + b)) }}")
    with pytest.raises(StepError) as raised:
        render_request("t.x", request, {"l": list(range(3000))}, Meter(1000))
    assert raised.value.error_class == "ExpressionBudgetExceeded"


def test_jsonapi_documents_and_plain_records() -> None:
    spec = _spec("rest.upsert")
    given = {"collection": "contacts", "id": "7", "record": {"email": None}}
    plain = render_request("rest.upsert", spec.request, given, Meter())
    assert plain.body == {"email": None} and plain.headers["Content-Type"] == "application/json"
    api = render_request("rest.upsert", spec.request, {**given, "format": "jsonapi"}, Meter())
    assert api.body == {"data": {"type": "contacts", "id": "7", "attributes": {"email": None}}}
    assert api.headers["Content-Type"] == api.headers["Accept"] == "application/vnd.api+json"
    assert api.path == "/contacts/7" and api.method == "PUT"


# --- reading the answer ------------------------------------------------------------------


def test_the_output_expression_and_its_default() -> None:
    assert _read(ActionResult(), _answer(200, {"a": 1})) == {"a": 1}
    result = ActionResult(output="{'n': response.body.a + input.n}")
    assert _read(result, _answer(201, {"a": 1})) == {"n": 2}


def test_an_expected_status_the_failure_expression_fails() -> None:
    spec = _spec("slack.post_message")
    with pytest.raises(StepError) as raised:
        _read(spec.result, _answer(200, {"ok": False, "error": "channel_not_found"}), [200])
    assert raised.value.error_class == "ActionFailed"
    assert raised.value.message == "action t.action: Slack answered channel_not_found"
    ok = _answer(200, {"ok": True, "channel": "C1", "ts": "1.2", "message": {}})
    assert _read(spec.result, ok, [200]) == {"channel": "C1", "ts": "1.2"}


def test_an_unexpected_status_is_http_status_with_the_actions_message() -> None:
    spec = _spec("github.create_issue")
    answer = _answer(422, {"message": "Validation Failed", "errors": [{"code": "missing"}]})
    with pytest.raises(StepError) as raised:
        _read(spec.result, answer, [201])
    assert raised.value.error_class == "HttpStatus"
    assert raised.value.message == "action t.action: GitHub answered 422: Validation Failed"


def test_a_text_body_falls_back_to_an_excerpt_without_the_secret() -> None:
    spec = _spec("github.create_issue")
    with pytest.raises(StepError) as raised:
        _read(spec.result, _answer(502, "<html>bad gateway s3cr3t-value</html>"), [201])
    assert raised.value.error_class == "HttpStatus"
    message = raised.value.message
    assert message.startswith(f"action t.action: {WHERE} answered 502: <html>bad gateway")
    assert "s3cr3t-value" not in message and "[redacted]" in message


def test_an_expected_status_with_an_unreadable_body_is_a_clear_failure() -> None:
    spec = _spec("slack.post_message")
    with pytest.raises(StepError) as raised:
        _read(spec.result, _answer(200, "<html>captive portal</html>"), [200])
    assert raised.value.error_class == "ActionFailed"
    assert "cannot be read as the action reads it (failure:" in raised.value.message
    assert "captive portal" in raised.value.message
    openai = _spec("openai.chat_completion")
    with pytest.raises(StepError) as raised:
        _read(openai.result, _answer(200, None), [200])
    assert raised.value.error_class == "ActionFailed"


def test_an_output_that_cannot_be_read_is_action_failed() -> None:
    result = ActionResult(output="response.body.missing.deeper")
    with pytest.raises(StepError) as raised:
        _read(result, _answer(200, {"a": 1}))
    assert raised.value.error_class == "ActionFailed"
    assert "(output:" in raised.value.message


def test_a_failure_that_is_no_boolean_is_named() -> None:
    with pytest.raises(StepError) as raised:
        _read(ActionResult(failure="response.body"), _answer(200, {"a": 1}))
    assert raised.value.error_class == "ActionFailed"
    assert "gave dict, not a boolean" in raised.value.message


def test_a_message_that_is_no_string_falls_back_and_a_long_one_is_cut() -> None:
    with pytest.raises(StepError) as raised:
        _read(ActionResult(message="response.status"), _answer(500, {"e": 1}))
    assert raised.value.message == f'action t.action: {WHERE} answered 500: {{"e":1}}'
    with pytest.raises(StepError) as raised:
        _read(ActionResult(message="response.body"), _answer(500, "x" * 1000))
    assert raised.value.message.endswith("x" * MAX_MESSAGE_CHARS + "...")


def test_expect_status_lists_the_statuses_that_succeed() -> None:
    assert _read(ActionResult(), _answer(204, None), [200, 204]) is None
    with pytest.raises(StepError) as raised:
        _read(ActionResult(), _answer(201, None), [200])
    assert raised.value.error_class == "HttpStatus"
    assert raised.value.message == f"action t.action: {WHERE} answered 201"


def test_a_json_api_error_without_detail_is_named_by_its_title() -> None:
    spec = _spec("rest.upsert")
    answer = _answer(409, {"errors": [{"status": "409", "title": "Conflict"}]})
    with pytest.raises(StepError) as raised:
        _read(spec.result, answer, [200, 201, 204])
    assert raised.value.message == "action t.action: the API answered 409: Conflict"


def test_a_webhook_payload_is_a_json_document() -> None:
    spec = _spec("webhook.post")
    schema = spec.input_schema["properties"]["payload"]
    assert schema["type"] == ["object", "array"]  # a string would be sent as text


def test_an_excerpt_reads_only_the_start_of_a_large_answer() -> None:
    """A failed answer as large as the executor reads (an API answering 400 with a
    megabyte, many times) is quoted from its start only, never scanned whole character by
    character on the executor's loop."""
    secret = "s3cr3t-value"
    body = "y" * 1000 + "x" * (4 * 1024 * 1024)
    started = time.perf_counter()
    for _ in range(5):
        with pytest.raises(StepError) as raised:
            read_answer(
                "t.action",
                ActionResult(),
                [],
                _answer(400, body),
                {},
                where=WHERE,
                secrets=[secret],
                meter=Meter(20_000),
            )
    assert time.perf_counter() - started < 0.5  # whole: ~0.15 s a megabyte, each time
    assert raised.value.message.endswith("answered 400: " + "y" * 200 + "...")


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("42", "/users/42/notes"),
        ("1/delete", "/users/1%2Fdelete/notes"),  # one segment, then refused by the path rule
        ("1?admin=1", "/users/1%3Fadmin=1/notes"),
        ("a#frag", "/users/a%23frag/notes"),
        ("50%", "/users/50%25/notes"),
        ("ada@example.com", "/users/ada@example.com/notes"),
        ("..", "/users/../notes"),  # a dot segment: refused by the path rule
        (7, "/users/7/notes"),
    ],
)
def test_a_template_inside_a_path_is_one_segment(given: Any, sent: str) -> None:
    request = ActionRequest(method="GET", path="/users/{{ input.id }}/notes")
    assert render_request("crm.notes", request, {"id": given}, Meter()).path == sent


def test_a_path_that_is_one_template_is_the_value_as_it_is() -> None:
    request = ActionRequest(method="POST", path="{{ input.path }}")
    rendered = render_request("hooks", request, {"path": "/a/b?x=1"}, Meter())
    assert rendered.path == "/a/b?x=1"
