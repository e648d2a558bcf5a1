"""Each node on its own: its id, its step policies, and the parameters of its type."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import msgspec

from flowmesh_proto.catalog import NODE_KINDS
from flowmesh_proto.connector_paths import path_problem
from flowmesh_proto.connectors import CONNECTOR_NAME_PATTERN
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.ids import (
    NODE_ID_PATTERN,
    QUEUE_NAME_PATTERN,
    is_event_type,
    is_node_id,
    is_queue_name,
    parse_uuid,
)
from flowmesh_proto.workflow import (
    HTTP_METHODS,
    ActionParameters,
    DelayNode,
    DelayParameters,
    HttpNode,
    HttpParameters,
    MapNode,
    Node,
    PublishNode,
    StepTemplate,
    SwitchNode,
    TaskNode,
    WaitForEventNode,
    WorkflowNode,
)
from flowmesh_registry.validation.graph import fallback_of
from flowmesh_registry.validation.problems import Problems, add_decode_error, shown
from flowmesh_registry.validation.shape import NodeEntry
from flowmesh_shared.expressions import has_template

INVALID = ErrorCode.INVALID_NODES
MAX_ATTEMPTS = 100
_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def map_template(template: StepTemplate) -> Node:
    """The node a map runs per item, as a Node; raises msgspec.ValidationError."""
    item = {"id": "item", "type": template.type, "parameters": template.parameters}
    return cast(Node, msgspec.convert(item, cast(Any, Node), strict=True))


def check_nodes(
    nodes: list[NodeEntry],
    *,
    ids: frozenset[str],
    output: str | None,
    max_nodes: int,
    problems: Problems,
) -> list[str]:
    """Report what is wrong with each node; return the workflow ids the nodes call."""
    if len(nodes) > max_nodes:
        problems.add("nodes", INVALID, f"{len(nodes)} nodes, at most {max_nodes}")
    if output is not None and output not in ids:
        problems.add("output", INVALID, f"no node has id {shown(output)}")
    seen: set[str] = set()
    workflow_refs: set[str] = set()
    for entry in nodes:
        if entry.id is not None:
            if not is_node_id(entry.id):
                problems.add(f"{entry.path}.id", INVALID, f"a node id must match {NODE_ID_PATTERN}")
            elif entry.id in seen:
                problems.add(f"{entry.path}.id", INVALID, f"duplicate node id {entry.id!r}")
            seen.add(entry.id)
        if entry.node is not None:
            _check_policies(entry.path, entry.node, ids, problems)
            _check_parameters(f"{entry.path}.parameters", entry.node, problems, workflow_refs)
    return sorted(workflow_refs)


def _check_policies(path: str, node: Node, ids: frozenset[str], problems: Problems) -> None:
    target = fallback_of(node)
    if target is None and node.on_error not in ("fail", "continue"):
        problems.add(f"{path}.on_error", INVALID, "on_error is fail, continue or fallback:<id>")
    elif target is not None and target == node.id:
        problems.add(f"{path}.on_error", INVALID, "a node cannot be its own fallback")
    elif target is not None and target not in ids:
        problems.add(f"{path}.on_error", INVALID, f"no node has id {shown(target)}")
    _check_positive(f"{path}.timeout", node.timeout, problems)
    retry = node.retry
    if retry is None:
        return
    if not 1 <= retry.max_attempts <= MAX_ATTEMPTS:
        problems.add(f"{path}.retry.max_attempts", INVALID, f"must be 1 to {MAX_ATTEMPTS}")
    _check_positive(f"{path}.retry.initial", retry.initial, problems)
    _check_positive(f"{path}.retry.max", retry.max, problems)
    if timedelta(0) < retry.max < retry.initial:
        problems.add(f"{path}.retry.initial", INVALID, "initial delay is longer than max")


def _check_positive(path: str, value: timedelta | None, problems: Problems) -> None:
    if value is not None and value <= timedelta(0):
        problems.add(path, INVALID, "must be a positive duration")


def _check_parameters(path: str, node: Node, problems: Problems, workflow_refs: set[str]) -> None:
    match node:
        case HttpNode(parameters=parameters):
            _check_http(path, parameters, problems)
        case DelayNode(parameters=parameters):
            _check_delay(path, parameters, problems)
        case SwitchNode(parameters=parameters):
            _check_cases(path, parameters.cases, problems)
        case MapNode(parameters=parameters):
            if (parameters.node is None) == (parameters.workflow_id is None):
                problems.add(path, INVALID, "a map runs either a node or a workflow_id")
            if parameters.concurrency < 1:
                problems.add(f"{path}.concurrency", INVALID, "must be at least 1")
            if parameters.workflow_id is not None:
                _check_workflow_id(f"{path}.workflow_id", parameters.workflow_id, problems)
                workflow_refs.update(_workflow_ref(parameters.workflow_id))
            if parameters.node is not None:
                _check_template(f"{path}.node", parameters.node, problems, workflow_refs)
        case WorkflowNode(parameters=parameters):
            _check_workflow_id(f"{path}.workflow_id", parameters.workflow_id, problems)
            workflow_refs.update(_workflow_ref(parameters.workflow_id))
            if parameters.version is not None and parameters.version < 1:
                problems.add(f"{path}.version", INVALID, "versions start at 1")
        case TaskNode(parameters=parameters):
            if not is_queue_name(parameters.queue):
                problems.add(f"{path}.queue", INVALID, f"must match {QUEUE_NAME_PATTERN}")
            _check_positive(f"{path}.timeout", parameters.timeout, problems)
        case PublishNode(parameters=parameters):
            _check_event_type(f"{path}.event", parameters.event, problems)
        case WaitForEventNode(parameters=parameters):
            _check_event_type(f"{path}.event", parameters.event, problems)
            _check_positive(f"{path}.timeout", parameters.timeout, problems)


def _check_template(
    path: str, template: StepTemplate, problems: Problems, workflow_refs: set[str]
) -> None:
    kind = NODE_KINDS.get(template.type)
    if kind is None:
        problems.add(f"{path}.type", INVALID, f"unknown node type {shown(template.type)}")
        return
    if not kind.in_map:
        message = f"a map cannot run a {template.type}: not supported in v1"
        problems.add(f"{path}.type", INVALID, message)
        return
    try:
        node = map_template(template)
    except msgspec.ValidationError as exc:
        add_decode_error(problems, path, INVALID, exc)
        return
    _check_parameters(f"{path}.parameters", node, problems, workflow_refs)


def _check_http(path: str, parameters: HttpParameters, problems: Problems) -> None:
    if not has_template(parameters.method) and parameters.method not in HTTP_METHODS:
        methods = ", ".join(HTTP_METHODS)
        problems.add(f"{path}.method", INVALID, f"{shown(parameters.method)} is none of {methods}")
    _check_destination(path, parameters, problems)
    for index, status in enumerate(parameters.expect_status):
        if not 100 <= status <= 599:
            problems.add(f"{path}.expect_status[{index}]", INVALID, "an HTTP status is 100..599")


def _check_destination(path: str, parameters: HttpParameters, problems: Problems) -> None:
    """Exactly one of ``url`` or ``connector`` with ``path``; each well formed."""
    url, connector, relative = parameters.url, parameters.connector, parameters.path
    if url is not None and (connector is not None or relative is not None):
        problems.add(f"{path}.url", INVALID, "an http node takes a url or a connector, not both")
    elif url is None and connector is None:
        problems.add(f"{path}.url", INVALID, "an http node takes a url (or a connector and path)")
    elif url is not None and not has_template(url) and not _is_http_url(url):
        problems.add(f"{path}.url", INVALID, "an absolute http:// or https:// URL is needed")
    if connector is not None and not re.fullmatch(CONNECTOR_NAME_PATTERN, connector):
        problems.add(f"{path}.connector", INVALID, f"must match {CONNECTOR_NAME_PATTERN}")
    if connector is not None and relative is None:
        problems.add(f"{path}.path", INVALID, "a connector's request needs a path ('/' at least)")
    if relative is not None and connector is None:
        problems.add(f"{path}.path", INVALID, "a path needs a connector (or write a url)")
    if relative is not None:
        problem = path_problem(_literal_text(relative))
        if problem is not None:
            problems.add(f"{path}.path", INVALID, problem)


def _literal_text(text: str) -> str:
    """``text`` with each template read as ``x`` (rendered values are checked at run time)."""
    return _TEMPLATE.sub("x", text)


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _check_delay(path: str, parameters: DelayParameters, problems: Problems) -> None:
    duration, until = parameters.duration, parameters.until
    if (duration is None) == (until is None):
        problems.add(path, INVALID, "a delay takes either a duration or an until time")
    if duration is not None and not has_template(duration):
        try:
            if msgspec.convert(duration, timedelta) < timedelta(0):
                problems.add(f"{path}.duration", INVALID, "a delay cannot be negative")
        except msgspec.ValidationError:
            problems.add(f"{path}.duration", INVALID, "not an ISO 8601 duration (like PT30S)")
    if until is not None and not has_template(until):
        try:
            if msgspec.convert(until, datetime).tzinfo is None:
                problems.add(f"{path}.until", INVALID, "an RFC 3339 time needs a UTC offset")
        except msgspec.ValidationError:
            problems.add(f"{path}.until", INVALID, "not an RFC 3339 time")


def _check_cases(path: str, cases: list[str], problems: Problems) -> None:
    if not cases:
        problems.add(f"{path}.cases", INVALID, "a switch needs at least one case")
    seen: set[str] = set()
    for index, case in enumerate(cases):
        if not case or case == "default":
            problems.add(f"{path}.cases[{index}]", INVALID, "a case is non-empty and not 'default'")
        elif case in seen:
            problems.add(f"{path}.cases[{index}]", INVALID, f"duplicate case {shown(case)}")
        seen.add(case)


def _check_workflow_id(path: str, value: str, problems: Problems) -> None:
    if parse_uuid(value) is None:
        problems.add(path, INVALID, "a workflow id is a UUID (templates are not allowed here)")


def _workflow_ref(value: str) -> set[str]:
    parsed = parse_uuid(value)
    return set() if parsed is None else {str(parsed)}


def _check_event_type(path: str, value: str, problems: Problems) -> None:
    if not has_template(value) and not is_event_type(value):
        problems.add(path, INVALID, f"{shown(value)} is not an event type (like order.created)")


def check_connectors(nodes: list[NodeEntry], known: frozenset[str], problems: Problems) -> None:
    """A MISSING_VARIABLE at each ``connector`` that names none of the tenant's ``known``."""
    for path, name in _connector_refs(nodes):
        if name not in known:
            message = f"connector {shown(name)} does not exist"
            problems.add(path, ErrorCode.MISSING_VARIABLE, message)


def connector_refs(nodes: list[NodeEntry]) -> list[str]:
    """The connectors the nodes name, sorted, once each."""
    return sorted({name for _, name in _connector_refs(nodes)})


def _connector_refs(nodes: list[NodeEntry]) -> Iterator[tuple[str, str]]:
    """Each connector an http or action node names (a map's per-item template's too), by
    path."""
    for entry in nodes:
        parameters = entry.node.parameters if entry.node is not None else None
        path = f"{entry.path}.parameters"
        if isinstance(parameters, HttpParameters) and parameters.connector is not None:
            yield f"{path}.connector", parameters.connector
        if isinstance(parameters, ActionParameters):
            yield f"{path}.connector", parameters.connector
        template = getattr(parameters, "node", None)
        if isinstance(template, StepTemplate) and template.type in ("http", "action"):
            name = template.parameters.get("connector")
            if isinstance(name, str):
                yield f"{path}.node.parameters.connector", name
