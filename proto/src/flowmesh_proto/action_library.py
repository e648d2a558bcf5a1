"""The built-in actions (DESIGN section 16): every tenant can use them, none can change them.

Each follows one documented API as that API documents its request and its answers, so a
connector pointed at the real service (or at anything that speaks the same API) works:

- ``slack.post_message``: Slack Web API ``chat.postMessage`` (a bot token, ``ok: false``
  answers with an ``error`` code are failures);
- ``email.send``: an email API of Postmark's shape (``POST /email``, a server token header,
  ``ErrorCode``/``Message`` answers);
- ``webhook.post``: any JSON webhook (``POST`` the payload, any 2xx succeeds);
- ``github.create_issue``: GitHub REST ``POST /repos/{owner}/{repo}/issues``;
- ``rest.upsert``: a REST resource created or replaced by ``PUT /{collection}/{id}``, as
  JSON or as a JSON:API document;
- ``openai.chat_completion``: an OpenAI-compatible ``POST /chat/completions``.

Names a tenant's own action may not take: any whose first part is one of
:data:`RESERVED_PREFIXES` (a future built-in may need it).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from flowmesh_proto.actions import (
    Action,
    ActionConnector,
    ActionRequest,
    ActionResult,
    ActionSpec,
)

__all__ = ["RESERVED_PREFIXES", "builtin_action", "builtin_actions", "is_reserved"]

#: First parts of action names kept for built-in actions.
RESERVED_PREFIXES = frozenset(
    {"slack", "email", "webhook", "github", "rest", "openai", "flowmesh", "builtin"}
)

_SEGMENT = r"^[A-Za-z0-9_.-]{1,100}$"  # a path segment: no '/', '?', '#' or '%'
_JSON = "application/json"


def _optional(member: str) -> str:
    """A template giving ``input.<member>``, or null (so the member is left out) when absent."""
    return f"{{{{ has(input.{member}) ? input.{member} : null }}}}"


def _text(**extra: Any) -> dict[str, Any]:
    return {"type": "string", **extra}


_SLACK = ActionSpec(
    description=(
        "Posts a message to a Slack channel with chat.postMessage (a bot token with "
        "chat:write). Outputs the channel and the message's ts."
    ),
    category="notification",
    input_schema={
        "type": "object",
        "properties": {
            "channel": _text(minLength=1, description="A channel id (C0123) or name."),
            "text": _text(description="The message (or its fallback when blocks are given)."),
            "blocks": {
                "type": "array",
                "items": {"type": "object"},
                "description": "Block Kit blocks.",
            },
            "thread_ts": _text(description="Reply in the thread of this message's ts."),
            "unfurl_links": {"type": "boolean"},
        },
        "required": ["channel"],
        "anyOf": [{"required": ["text"]}, {"required": ["blocks"]}],
        "additionalProperties": False,
    },
    output_schema={
        "type": "object",
        "properties": {"channel": {"type": "string"}, "ts": {"type": "string"}},
        "required": ["channel", "ts"],
    },
    request=ActionRequest(
        method="POST",
        path="/chat.postMessage",
        headers={"Content-Type": "application/json; charset=utf-8"},
        body={
            "channel": "{{ input.channel }}",
            "text": _optional("text"),
            "blocks": _optional("blocks"),
            "thread_ts": _optional("thread_ts"),
            "unfurl_links": _optional("unfurl_links"),
        },
        expect_status=[200],
    ),
    result=ActionResult(
        output="{'channel': response.body.channel, 'ts': response.body.ts}",
        failure="!(has(response.body.ok) && response.body.ok == true)",
        message=(
            "has(response.body.error) ? 'Slack answered ' + string(response.body.error) "
            ": 'Slack answered ' + string(response.status)"
        ),
    ),
    connector=ActionConnector(
        base_url="https://slack.com/api", auth="bearer", secrets=["SLACK_BOT_TOKEN"]
    ),
    example={"channel": "C0123456789", "text": "Order {{ trigger.data.id }} shipped"},
)

_EMAIL = ActionSpec(
    description=(
        "Sends an email through an API of Postmark's shape (POST /email with a server "
        "token header). Outputs the message id and when it was accepted."
    ),
    category="notification",
    input_schema={
        "type": "object",
        "properties": {
            "from": _text(minLength=3, description="The sender, as the API allows it."),
            "to": _text(minLength=3, description="Recipients, comma-separated (at most 50)."),
            "cc": _text(),
            "bcc": _text(),
            "subject": _text(maxLength=2000),
            "text": _text(description="The plain text body."),
            "html": _text(description="The HTML body."),
            "reply_to": _text(),
            "tag": _text(maxLength=1000),
            "message_stream": _text(description="The API's message stream (outbound)."),
        },
        "required": ["from", "to", "subject"],
        "anyOf": [{"required": ["text"]}, {"required": ["html"]}],
        "additionalProperties": False,
    },
    output_schema={
        "type": "object",
        "properties": {
            "message_id": {"type": "string"},
            "submitted_at": {"type": "string"},
            "to": {"type": "string"},
        },
        "required": ["message_id"],
    },
    request=ActionRequest(
        method="POST",
        path="/email",
        headers={"Accept": _JSON, "Content-Type": _JSON},
        body={
            "From": "{{ input.from }}",
            "To": "{{ input.to }}",
            "Cc": _optional("cc"),
            "Bcc": _optional("bcc"),
            "Subject": "{{ input.subject }}",
            "TextBody": _optional("text"),
            "HtmlBody": _optional("html"),
            "ReplyTo": _optional("reply_to"),
            "Tag": _optional("tag"),
            "MessageStream": _optional("message_stream"),
        },
        expect_status=[200],
    ),
    result=ActionResult(
        output=(
            "{'message_id': response.body.MessageID, 'submitted_at': "
            "string(response.body.SubmittedAt), 'to': string(response.body.To)}"
        ),
        failure="has(response.body.ErrorCode) && response.body.ErrorCode != 0",
        message=(
            "has(response.body.Message) ? 'the email API answered ' + "
            "string(response.body.ErrorCode) + ': ' + string(response.body.Message) "
            ": 'the email API answered ' + string(response.status)"
        ),
    ),
    connector=ActionConnector(
        base_url="https://api.postmarkapp.com",
        auth="header",
        name="X-Postmark-Server-Token",
        secrets=["POSTMARK_SERVER_TOKEN"],
    ),
    example={
        "from": "orders@example.com",
        "to": "{{ trigger.data.email }}",
        "subject": "Your order shipped",
        "text": "Order {{ trigger.data.id }} is on its way.",
    },
)

_WEBHOOK = ActionSpec(
    description=(
        "POSTs a JSON payload to a webhook under the connector's base URL; any 2xx "
        "succeeds. Outputs the answer's status and body."
    ),
    category="notification",
    input_schema={
        "type": "object",
        "properties": {
            "path": _text(pattern="^/", description="Where under the base URL ('/' when absent)."),
            "payload": {
                "type": ["object", "array"],
                "description": "The JSON document sent (an object or an array).",
            },
            "event": _text(
                pattern="^[A-Za-z0-9._:-]{1,128}$",
                description="Sent as the X-Flowmesh-Event header.",
            ),
        },
        "required": ["payload"],
        "additionalProperties": False,
    },
    output_schema={
        "type": "object",
        "properties": {"status": {"type": "integer"}, "body": {}},
        "required": ["status"],
    },
    request=ActionRequest(
        method="POST",
        path="{{ has(input.path) ? input.path : '/' }}",
        headers={"Content-Type": _JSON, "X-Flowmesh-Event": _optional("event")},
        body="{{ input.payload }}",
    ),
    result=ActionResult(output="{'status': response.status, 'body': response.body}"),
    connector=ActionConnector(base_url="https://hooks.example.com", auth="none"),
    example={"path": "/orders", "payload": {"id": "{{ trigger.data.id }}"}, "event": "order"},
)

_GITHUB = ActionSpec(
    description=(
        "Opens an issue in a GitHub repository (REST API, a token with issues write). "
        "Outputs its number, id and web URL."
    ),
    category="data",
    input_schema={
        "type": "object",
        "properties": {
            "owner": _text(pattern=_SEGMENT, description="The account owning the repository."),
            "repo": _text(pattern=_SEGMENT, description="The repository's name."),
            "title": _text(minLength=1),
            "body": _text(description="The issue's text (Markdown)."),
            "labels": {"type": "array", "items": {"type": "string"}},
            "assignees": {"type": "array", "items": {"type": "string"}},
            "milestone": {"type": "integer"},
        },
        "required": ["owner", "repo", "title"],
        "additionalProperties": False,
    },
    output_schema={
        "type": "object",
        "properties": {
            "number": {"type": "integer"},
            "id": {"type": "integer"},
            "url": {"type": "string"},
        },
        "required": ["number", "url"],
    },
    request=ActionRequest(
        method="POST",
        path="/repos/{{ input.owner }}/{{ input.repo }}/issues",
        headers={
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "flowmesh",
        },
        body={
            "title": "{{ input.title }}",
            "body": _optional("body"),
            "labels": _optional("labels"),
            "assignees": _optional("assignees"),
            "milestone": _optional("milestone"),
        },
        expect_status=[201],
    ),
    result=ActionResult(
        output="{'number': response.body.number, 'id': response.body.id, "
        "'url': response.body.html_url}",
        message=(
            "has(response.body.message) ? 'GitHub answered ' + string(response.status) + "
            "': ' + string(response.body.message) + (has(response.body.errors) && "
            "size(response.body.errors) > 0 && has(response.body.errors[0].field) && "
            "has(response.body.errors[0].code) ? ' (' + string(response.body.errors[0].field) + "
            "': ' + string(response.body.errors[0].code) + ')' : '') "
            ": 'GitHub answered ' + string(response.status)"
        ),
    ),
    connector=ActionConnector(
        base_url="https://api.github.com", auth="bearer", secrets=["GITHUB_TOKEN"]
    ),
    example={
        "owner": "acme",
        "repo": "orders",
        "title": "Order {{ trigger.data.id }} failed",
        "labels": ["ops"],
    },
)

_REST_UPSERT = ActionSpec(
    description=(
        "Creates or replaces a record with PUT /{collection}/{id}: plain JSON, or a JSON:API "
        "document ({data: {type, id, attributes}}, media type application/vnd.api+json) "
        "when format is jsonapi. Outputs the "
        "status, whether it was created (201) and the answer's body."
    ),
    category="data",
    input_schema={
        "type": "object",
        "properties": {
            "collection": _text(
                pattern="^[A-Za-z0-9_-]{1,100}(/[A-Za-z0-9_-]{1,100}){0,4}$",
                description="The collection's path under the base URL (contacts, v2/contacts).",
            ),
            "id": _text(pattern=_SEGMENT, description="The record's id."),
            "record": {"type": "object", "description": "The record (its attributes)."},
            "format": {"enum": ["json", "jsonapi"], "default": "json"},
            "type": _text(
                pattern="^[A-Za-z0-9_-]{1,100}$",
                description="JSON:API: the resource type (the collection when absent).",
            ),
        },
        "required": ["collection", "id", "record"],
        "additionalProperties": False,
    },
    output_schema={
        "type": "object",
        "properties": {
            "status": {"type": "integer"},
            "created": {"type": "boolean"},
            "body": {},
        },
        "required": ["status", "created"],
    },
    request=ActionRequest(
        method="PUT",
        path="/{{ input.collection }}/{{ input.id }}",
        headers={
            "Content-Type": (
                "{{ has(input.format) && input.format == 'jsonapi' ? "
                "'application/vnd.api+json' : 'application/json' }}"
            ),
            "Accept": (
                "{{ has(input.format) && input.format == 'jsonapi' ? "
                "'application/vnd.api+json' : 'application/json' }}"
            ),
        },
        body=(
            "{{ has(input.format) && input.format == 'jsonapi' ? {'data': {'type': "
            "has(input.type) ? input.type : input.collection, 'id': input.id, "
            "'attributes': input.record}} : input.record }}"
        ),
        expect_status=[200, 201, 204],
    ),
    result=ActionResult(
        output="{'status': response.status, 'created': response.status == 201, "
        "'body': response.body}",
        message=(
            "has(response.body.errors) && size(response.body.errors) > 0 && "
            "has(response.body.errors[0].detail) ? 'the API answered ' + "
            "string(response.status) + ': ' + string(response.body.errors[0].detail) : "
            "has(response.body.errors) && size(response.body.errors) > 0 && "
            "has(response.body.errors[0].title) ? 'the API answered ' + "
            "string(response.status) + ': ' + string(response.body.errors[0].title) : "
            "has(response.body.message) ? 'the API answered ' + string(response.status) + "
            "': ' + string(response.body.message) : 'the API answered ' + string(response.status)"
        ),
    ),
    connector=ActionConnector(
        base_url="https://crm.example.com/api", auth="bearer", secrets=["CRM_TOKEN"]
    ),
    example={
        "collection": "contacts",
        "id": "{{ trigger.data.customer_id }}",
        "record": {"email": "{{ trigger.data.email }}", "plan": "pro"},
    },
)

_OPENAI_CHAT = ActionSpec(
    description=(
        "Asks an OpenAI-compatible API for a chat completion (POST /chat/completions). "
        "Outputs the first choice's content and finish reason, the model and the usage."
    ),
    category="ai",
    input_schema={
        "type": "object",
        "properties": {
            "model": _text(minLength=1),
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "role": {"enum": ["system", "developer", "user", "assistant"]},
                        "content": {"type": "string"},
                    },
                    "required": ["role", "content"],
                    "additionalProperties": False,
                },
            },
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "max_tokens": {
                "type": "integer",
                "minimum": 1,
                "description": "Deprecated by OpenAI (refused by its reasoning models); "
                "other compatible APIs take it.",
            },
            "max_completion_tokens": {
                "type": "integer",
                "minimum": 1,
                "description": "The most tokens the completion may take (OpenAI's current name).",
            },
            "response_format": {"type": "object"},
            "user": _text(),
        },
        "required": ["model", "messages"],
        "additionalProperties": False,
    },
    output_schema={
        "type": "object",
        "properties": {
            "content": {"type": ["string", "null"]},
            "finish_reason": {"type": ["string", "null"]},
            "model": {"type": "string"},
            "usage": {"type": "object"},
        },
        "required": ["content"],
    },
    request=ActionRequest(
        method="POST",
        path="/chat/completions",
        headers={"Content-Type": _JSON},
        body={
            "model": "{{ input.model }}",
            "messages": "{{ input.messages }}",
            "temperature": _optional("temperature"),
            "max_tokens": _optional("max_tokens"),
            "max_completion_tokens": _optional("max_completion_tokens"),
            "response_format": _optional("response_format"),
            "user": _optional("user"),
        },
        expect_status=[200],
    ),
    result=ActionResult(
        output=(
            "{'content': response.body.choices[0].message.content, "
            "'finish_reason': response.body.choices[0].finish_reason, "
            "'model': response.body.model, "
            "'usage': has(response.body.usage) ? response.body.usage : {}}"
        ),
        failure="!has(response.body.choices) || size(response.body.choices) == 0",
        message=(
            "has(response.body.error) && has(response.body.error.message) ? "
            "'the model API answered ' + string(response.status) + ': ' + "
            "string(response.body.error.message) : 'the model API answered ' + "
            "string(response.status) + ' without choices'"
        ),
    ),
    connector=ActionConnector(
        base_url="https://api.openai.com/v1", auth="bearer", secrets=["OPENAI_API_KEY"]
    ),
    example={
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Summarise the order in one sentence."},
            {"role": "user", "content": "{{ string(trigger.data) }}"},
        ],
        "max_completion_tokens": 100,
    },
)

_SPECS: Mapping[str, ActionSpec] = {
    "slack.post_message": _SLACK,
    "email.send": _EMAIL,
    "webhook.post": _WEBHOOK,
    "github.create_issue": _GITHUB,
    "rest.upsert": _REST_UPSERT,
    "openai.chat_completion": _OPENAI_CHAT,
}


@functools.cache
def builtin_actions() -> Mapping[str, Action]:
    """Every built-in action by name (version 1, the only one)."""
    return {
        name: Action(name=name, version=1, builtin=True, spec=spec) for name, spec in _SPECS.items()
    }


def builtin_action(name: str) -> Action | None:
    return builtin_actions().get(name)


def is_reserved(name: str) -> bool:
    """Whether ``name`` is a built-in action's or under a built-in's first part."""
    return name.split(".", 1)[0] in RESERVED_PREFIXES


def _check() -> None:
    for name in _SPECS:
        if not is_reserved(name):
            raise TypeError(f"built-in action {name}: its first part is not reserved")


_check()
