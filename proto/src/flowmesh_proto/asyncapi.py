"""The AsyncAPI 3.0 document of every subject Flowmesh uses, with the message each carries:
the same msgspec types as the JSON Schema files of ``flowmesh_proto.schemas``, which writes
this document as ``proto/schemas/asyncapi.json``.

The document describes Flowmesh (its four services together) as one application: ``send`` is
what a Flowmesh service publishes, ``receive`` what one consumes. A client does the mirror
image (it sends trigger events, receives run events, serves task requests).
"""

from __future__ import annotations

import typing
from importlib.metadata import version
from typing import Any

import msgspec

from flowmesh_proto import events, headers, ids, registry, runs, tasks, timers
from flowmesh_proto.errors import Problem
from flowmesh_proto.subjects import Subjects, stream_names

DESCRIPTION = """\
Every subject Flowmesh uses, with the message each carries (JSON; the same schemas as the \
`*.json` files beside this document, generated from `flowmesh_proto`). Addresses use the \
default subject prefix `fm` (the `SUBJECT_PREFIX` setting) and stream names the default \
stream prefix `FM`.

Operations are Flowmesh's own, all four services taken as one application: `send` means a \
Flowmesh service publishes on the channel, `receive` that one consumes from it. An \
integrating service does the mirror image: it sends trigger events (`receiveTenantEvent`: \
a tenant's publisher sends on `fm.<t>.events.<type>` in its own account, which maps it to \
the ingress; the gateway stores it and answers like JetStream), receives run events \
(`sendRunEvent`), and serves task requests (`sendTaskRequest`, answering on the subject in \
its `Fm-Reply-To` header).

Registry operations (`fm.rpc.registry.<op>`) are for Flowmesh's own services: NATS \
permissions keep tenants away from `fm.rpc.>`. See docs/events.md."""


#: What each run event says (the payload schema says what it carries).
RUN_EVENTS: dict[str, str] = {
    "run.queued": "The run is accepted and waits for an executor; the run's first event.",
    "run.scheduled": "The run is accepted and waits for its `run_at` (a delayed execute).",
    "run.started": "An executor started driving the run (once per run).",
    "run.claimed": "An executor took over a run already started (a lapsed lease, a parked run "
    "woken), before any other work; changes "
    "nothing in the run's state.",
    "run.waiting": "An executor took a queued run that must wait before it starts "
    "(`reason`: `concurrency_key`), since `since`; the run stays queued.",
    "step.started": "An attempt of a step began; `deadline` is when it times out.",
    "step.succeeded": "A step succeeded with `output` (`reused`: taken from the parent run).",
    "step.failed": "An attempt failed; `final: false` when a `step.retrying` follows.",
    "step.retrying": "The step's attempt `attempt` runs `delay_ms` after `at`.",
    "step.skipped": "The step will not run in this run (no incoming edge was satisfied).",
    "step.log": "A log line of a step (part of the contract; no built node publishes one).",
    "steps": "Several step events published as one message, `events` in order.",
    "run.succeeded": "The run ended well, with its `output`. Terminal.",
    "run.failed": "The run failed with `error` (`code`, `message`, `node_id`). Terminal.",
    "run.cancelled": "The run was cancelled (`reason`). Terminal.",
    "run.timed_out": "The run reached its workflow's `timeout`. Terminal.",
}

_HEADER_TEXT = {
    headers.MSG_ID: "JetStream deduplication id: a second message with it within the stream's "
    "duplicate window is dropped.",
    headers.EXPECTED_LAST_SUBJECT_SEQUENCE: "The fence: the stream sequence of the run's last "
    "event as the publisher saw it (`0` for a run's first event); JetStream refuses the "
    "message when the subject has moved on.",
    headers.TRACEPARENT: "W3C trace context, continued by whoever consumes the message.",
    headers.TRACESTATE: "W3C trace state, with `traceparent`.",
    headers.TENANT: "The tenant the request acts for (absent for platform and catalogue "
    "operations).",
    headers.PRINCIPAL: "Who asks: `key:<tenant>:<key id>`, `user:<tenant>:<subject>`, "
    "`service:<name>` or `platform:<name>`.",
    headers.REQUEST_ID: "The request id (`[A-Za-z0-9._:-]{1,128}`; made when missing), "
    "echoed in the reply and in its problem.",
    headers.SERVICE_ERROR: "On a failed operation only: the problem's title.",
    headers.SERVICE_ERROR_CODE: "On a failed operation only: the problem's HTTP status; the "
    "body is a problem.",
    tasks.REPLY_TO: "The core NATS subject the worker answers on.",
}

_PARAMETERS: dict[str, dict[str, Any]] = {
    "tenant": {
        "description": f"The tenant id: `{ids.TENANT_ID_PATTERN}`, not "
        f"{', '.join(sorted(ids.RESERVED_TENANT_IDS))}."
    },
    "run_id": {"description": "The run's id, a UUIDv7 string."},
    "type": {
        "description": f"The event type, `{ids.EVENT_TYPE_PATTERN}`, at most 200 characters. "
        "Its dots are subject separators: subscribe to `fm.<tenant>.events.>` for every type."
    },
    "queue": {"description": f"The task queue a `task` step names, `{ids.QUEUE_NAME_PATTERN}`."},
    "purpose": {
        "description": "Why the timer was set.",
        "enum": list(typing.get_args(timers.TimerPurpose)),
    },
}


def _address(subject: str) -> str:
    """A subject made with parameter names as tokens, with those tokens as ``{name}``."""
    return ".".join(f"{{{t}}}" if t in _PARAMETERS else t for t in subject.split("."))


class _Doc:
    """The AsyncAPI document under construction."""

    def __init__(self) -> None:
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}

    def headers(self, name: str, *names: str, required: tuple[str, ...] = ()) -> dict[str, str]:
        properties = {n: {"type": "string", "description": _HEADER_TEXT[n]} for n in names}
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = list(required)
        self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def message(self, key: str, name: str, payload: Any, summary: str, **extra: Any) -> str:
        self.messages[key] = {
            "name": name,
            "title": name,
            "summary": summary,
            "payload": payload,
            **extra,
        }
        return key

    def channel(self, key: str, address: str | None, description: str, messages: list[str]) -> None:
        channel: dict[str, Any] = {
            "address": address,
            "description": description,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages},
        }
        params = [] if address is None else [t[1:-1] for t in address.split(".") if t[0] == "{"]
        if params:
            channel["parameters"] = {p: _PARAMETERS[p] for p in params}
        self.channels[key] = channel

    def operation(self, key: str, action: str, channel: str, summary: str, **extra: Any) -> None:
        messages = [
            {"$ref": f"#/channels/{channel}/messages/{m}"}
            for m in self.channels[channel]["messages"]
        ]
        self.operations[key] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": summary,
            "messages": messages,
            **extra,
        }


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every subject (default prefix ``fm``), deterministic."""
    doc = _Doc()
    roots = [
        runs.RunRequest,
        runs.RunEvent,
        events.EventEnvelope,
        events.EventStored,
        events.EventRefused,
        tasks.TaskRequest,
        tasks.TaskReply,
        runs.CancelRequest,
        registry.WorkflowChanged,
        timers.Timer,
        Problem,
        *(kind for pair in registry.OPERATIONS.values() for kind in pair),
    ]
    refs, components = msgspec.json.schema_components(
        roots, ref_template="#/components/schemas/{name}"
    )
    doc.schemas.update(_schema_object(components))
    # The two tagged unions have no component of their own: name them.
    assert not {"RunEvent", "TaskReply"} & set(components)
    doc.schemas["RunEvent"] = _schema_object(refs[roots.index(runs.RunEvent)])
    doc.schemas["TaskReply"] = _schema_object(refs[roots.index(tasks.TaskReply)])
    _run_channels(doc)
    _other_channels(doc)
    _registry_channels(doc)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Flowmesh messages over NATS",
            "version": version("flowmesh-proto"),
            "description": DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "NATS with JetStream, as `make dev` runs it.",
            }
        },
        "channels": doc.channels,
        "operations": doc.operations,
        "components": {"messages": doc.messages, "schemas": doc.schemas},
    }


def _run_channels(doc: _Doc) -> None:
    s, names = Subjects("fm"), stream_names("FM")
    run_headers = doc.headers(
        "RunEventHeaders",
        headers.EXPECTED_LAST_SUBJECT_SEQUENCE,
        headers.MSG_ID,
        headers.TRACEPARENT,
        headers.TRACESTATE,
    )
    kinds = [doc.message("RunRequest", "run.request", _ref(runs.RunRequest), "Run this run.")]
    doc.channel(
        "runRequests",
        _address(s.run_requests("tenant")),
        f"Run requests (stream `{names.run_requests}`, a work queue): one message per run to "
        "drive, taken by one executor. `Nats-Msg-Id` names the request (the run id, or the "
        "fire, the wake or the resume it stands for), so a request sent twice runs once.",
        kinds,
    )
    doc.messages["RunRequest"]["headers"] = doc.headers(
        "RunRequestHeaders", headers.MSG_ID, headers.TRACEPARENT, headers.TRACESTATE
    )
    events_ = []
    for kind in typing.get_args(runs.RunEvent):
        tag = kind.__struct_config__.tag
        events_.append(
            doc.message(kind.__name__, tag, _ref(kind), RUN_EVENTS[tag], headers=run_headers)
        )
    doc.channel(
        "runEvents",
        _address(s.run_events("tenant", "run_id")),
        f"A run's events, in order (stream `{names.run_events}`); each event's stream "
        "sequence is its public id (the SSE `id:`). Published fenced, so one writer at a "
        "time advances a run.",
        events_,
    )
    doc.operation(
        "sendRunRequest",
        "send",
        "runRequests",
        "The gateway (execute, retry, webhooks), the scheduler (cron, events, due timers, "
        "wakes) and executors (child runs, parked runs) request runs.",
    )
    doc.operation("receiveRunRequest", "receive", "runRequests", "Executors drive runs.")
    doc.operation(
        "sendRunEvent",
        "send",
        "runEvents",
        "Executors publish every state change; whoever accepts a run publishes its "
        "`run.queued` or `run.scheduled`.",
    )
    doc.operation(
        "receiveRunEvent",
        "receive",
        "runEvents",
        "The registry projects them into run history; the gateway streams them (SSE).",
    )


def _other_channels(doc: _Doc) -> None:
    s, names = Subjects("fm"), stream_names("FM")
    doc.message(
        "TriggerEvent",
        "event",
        _ref(events.EventEnvelope),
        "A trigger event (CloudEvents field names); `tenant` and `type` are the subject's.",
        headers=doc.headers(
            "TriggerEventHeaders", headers.MSG_ID, headers.TRACEPARENT, headers.TRACESTATE
        ),
    )
    doc.channel(
        "triggerEvents",
        _address(s.events("tenant", "type")),
        f"Trigger events (stream `{names.events}`).",
        ["TriggerEvent"],
    )
    doc.operation(
        "receiveTriggerEvent",
        "receive",
        "triggerEvents",
        "The scheduler starts the runs of matching event triggers and wakes matching "
        "parked `wait_for_event` steps; running `wait_for_event` steps read them too.",
    )
    doc.operation(
        "sendTriggerEvent",
        "send",
        "triggerEvents",
        "The gateway publishes `POST /events` and tenants' events from the ingress; "
        "`publish` steps publish theirs.",
    )
    _ingress_channels(doc)
    doc.message(
        "TaskRequest",
        "task.request",
        _ref(tasks.TaskRequest),
        "One attempt of a `task` step for an external worker.",
        headers=doc.headers(
            "TaskRequestHeaders",
            tasks.REPLY_TO,
            headers.MSG_ID,
            headers.TRACEPARENT,
            required=(tasks.REPLY_TO,),
        ),
    )
    doc.message(
        "TaskReply",
        "task.reply",
        {"$ref": "#/components/schemas/TaskReply"},
        "`heartbeat` while working, then one `result` or `error`.",
    )
    doc.channel(
        "tasks",
        _address(s.tasks("tenant", "queue")),
        f"Task requests (stream `{names.tasks}`, a work queue: one worker takes each).",
        ["TaskRequest"],
    )
    doc.channel(
        "taskReplies",
        None,
        "The core NATS subject named by a task request's `Fm-Reply-To` header.",
        ["TaskReply"],
    )
    doc.operation(
        "sendTaskRequest",
        "send",
        "tasks",
        "Executors hand `task` steps to workers and await their replies.",
        reply={
            "address": {"location": f"$message.header#/{tasks.REPLY_TO}"},
            "channel": {"$ref": "#/channels/taskReplies"},
            "messages": [{"$ref": "#/channels/taskReplies/messages/TaskReply"}],
        },
    )
    doc.message("CancelRequest", "run.cancel", _ref(runs.CancelRequest), "Cancel this run.")
    doc.channel(
        "control",
        _address(s.control("tenant", "run_id")),
        f"Run control (core NATS, no stream; the request is also kept in the "
        f"`{names.run_control}` bucket under `<tenant>.<run_id>`).",
        ["CancelRequest"],
    )
    doc.operation(
        "sendCancel",
        "send",
        "control",
        "The gateway (`POST /runs/{run_id}/cancel`) and executors (concurrency) cancel runs.",
    )
    doc.operation("receiveCancel", "receive", "control", "The executor holding the run stops it.")
    doc.message(
        "WorkflowChanged",
        "workflow.changed",
        _ref(registry.WorkflowChanged),
        "A workflow was created, updated, patched or deleted (through the outbox).",
        headers=doc.headers("WorkflowChangedHeaders", headers.MSG_ID),
    )
    doc.channel(
        "workflowChanged",
        _address(s.workflow_changed("tenant")),
        f"Workflow changes (stream `{names.registry}`); `Nats-Msg-Id` is `outbox:<id>`.",
        ["WorkflowChanged"],
    )
    doc.operation("sendWorkflowChanged", "send", "workflowChanged", "The registry announces.")
    doc.operation(
        "receiveWorkflowChanged", "receive", "workflowChanged", "The scheduler re-arms triggers."
    )
    doc.message(
        "Timer",
        "timer",
        _ref(timers.Timer),
        "A run request to publish at `due`.",
        headers=doc.headers(
            "TimerHeaders", headers.MSG_ID, headers.TRACEPARENT, headers.TRACESTATE
        ),
    )
    doc.channel(
        "timers",
        _address(s.timers("tenant", "purpose")),
        f"Durable timers (stream `{names.timers}`, a work queue); `Nats-Msg-Id` is `timer:<id>`.",
        ["Timer"],
    )
    doc.operation(
        "sendTimer", "send", "timers", "The gateway (delayed runs) and executors (parked runs)."
    )
    doc.operation(
        "receiveTimer", "receive", "timers", "The scheduler publishes each due timer's request."
    )


def _registry_channels(doc: _Doc) -> None:
    s = Subjects("fm")
    doc.message("Problem", "problem", _ref(Problem), "The operation failed (RFC 9457 problem).")
    replies = ["Problem"]
    for op, (request, reply) in registry.OPERATIONS.items():
        doc.message(
            f"registry.{op}.request",
            f"registry.{op}.request",
            _ref(request),
            f"The `{op}` request.",
            headers=_registry_request_headers(doc),
        )
        doc.message(f"registry.{op}.reply", f"registry.{op}.reply", _ref(reply), f"`{op}` done.")
        replies.append(f"registry.{op}.reply")
    for message in replies:
        doc.messages[message]["headers"] = _registry_reply_headers(doc)
    doc.channel(
        "registryReplies",
        None,
        "The requester's reply subject (a NATS inbox).",
        replies,
    )
    for op in registry.OPERATIONS:
        channel = f"registry.{op}"
        doc.channel(
            channel,
            _address(s.rpc("registry", op)),
            f"The registry's `{op}` operation (queue group `registry`).",
            [f"registry.{op}.request"],
        )
        doc.operation(
            f"registry.{op}",
            "receive",
            channel,
            f"The registry serves `{op}`.",
            reply={
                "channel": {"$ref": "#/channels/registryReplies"},
                "messages": [
                    {"$ref": f"#/channels/registryReplies/messages/registry.{op}.reply"},
                    {"$ref": "#/channels/registryReplies/messages/Problem"},
                ],
            },
        )


def _registry_request_headers(doc: _Doc) -> dict[str, str]:
    return doc.headers(
        "RegistryRequestHeaders",
        headers.TENANT,
        headers.PRINCIPAL,
        headers.REQUEST_ID,
        headers.TRACEPARENT,
        headers.TRACESTATE,
    )


def _ingress_channels(doc: _Doc) -> None:
    s, names = Subjects("fm"), stream_names("FM")
    doc.channel(
        "eventIngress",
        _address(s.ingress("tenant", "type")),
        "Trigger events of a tenant's own publishers: what one publishes on "
        "`fm.<tenant>.events.<type>` in its tenant's account arrives here (the account's "
        "import maps it); no stream captures it. A `Nats-Msg-Id` it carries is not passed "
        'on: the event is `(tenant, id)` (docs/events.md, "Deduplication").',
        ["TriggerEvent"],
    )
    stored = doc.message(
        "EventStored",
        "event.stored",
        _ref(events.EventStored),
        "Shaped like JetStream's publish acknowledgement (`js.publish` reads it): the "
        "sequence of the copy that counts; `duplicate` when the tenant sent the id before.",
    )
    refused = doc.message(
        "EventRefused",
        "event.refused",
        _ref(events.EventRefused),
        "Shaped like a JetStream API error: 400 (`err_code` 4200 a bad envelope, 4130 too "
        "large), 503 (4290 too many in flight, 5030 JetStream unavailable): send it again.",
    )
    doc.channel(
        "eventIngressReplies",
        None,
        "The publisher's reply subject (a NATS inbox of its account); none for a plain "
        "publish, which gets no answer.",
        [stored, refused],
    )
    doc.operation(
        "receiveTenantEvent",
        "receive",
        "eventIngress",
        f"A gateway (queue group `gateway-ingress`) checks the event, stores it in "
        f"`{names.events}` once per `(tenant, id)` and answers a request.",
        reply={
            "channel": {"$ref": "#/channels/eventIngressReplies"},
            "messages": [
                {"$ref": f"#/channels/eventIngressReplies/messages/{m}"} for m in (stored, refused)
            ],
        },
    )


def _registry_reply_headers(doc: _Doc) -> dict[str, str]:
    return doc.headers(
        "RegistryReplyHeaders",
        headers.REQUEST_ID,
        headers.SERVICE_ERROR,
        headers.SERVICE_ERROR_CODE,
    )


def _ref(kind: Any) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{kind.__name__}"}


def _schema_object(schema: Any) -> Any:
    """msgspec's JSON Schema as an AsyncAPI Schema Object: the OpenAPI-style
    ``discriminator`` object is dropped (AsyncAPI's is a property name of the schema
    itself); each variant's ``kind`` enum tells them apart all the same."""
    if isinstance(schema, dict):
        return {k: _schema_object(v) for k, v in schema.items() if k != "discriminator"}
    if isinstance(schema, list):
        return [_schema_object(item) for item in schema]
    return schema
