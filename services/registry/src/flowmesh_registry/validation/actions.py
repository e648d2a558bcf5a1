"""Actions at validation (DESIGN section 16): an action spec on its own, and the action
nodes of a definition against the actions they name. Pure.

A spec (``PUT /actions/{name}``, and each built-in one, checked by a test):

- ``input_schema`` is an object's JSON Schema that compiles (offline, linear-time
  patterns: :mod:`flowmesh_shared.json_schemas`); ``output_schema`` compiles; ``example``
  matches ``input_schema`` (its strings may be templates);
- the request's strings are templates over ``input`` alone and its ``path`` follows the
  connector path rule (:mod:`flowmesh_proto.connector_paths`, a template read as one
  segment; a path that starts with a template is checked when the step runs); it sets no
  credential header (credentials are the connector's);
- the result's expressions compile and read ``response`` and ``input`` alone.

An action node: its ``action`` names a built-in action or one of the tenant's
(``MISSING_VARIABLE`` at ``.action`` otherwise), its ``version`` one that exists, its
``connector`` one of the tenant's (:func:`~flowmesh_registry.validation.nodes.check_connectors`)
and its ``input`` matches the action's ``input_schema`` (a 422 ``VALIDATION_FAILED`` at
``nodes[i].parameters.input.<where>``; a string holding a template passes whatever the
schema says of it, and is judged again when the step runs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from flowmesh_proto.action_library import builtin_action, is_reserved
from flowmesh_proto.actions import ACTION_NAME_PATTERN, Action, ActionKey, ActionSpec
from flowmesh_proto.connector_paths import path_problem
from flowmesh_proto.connector_rules import client_owned_header
from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_proto.workflow import ActionParameters, StepTemplate
from flowmesh_registry.validation.problems import Problems, shown
from flowmesh_registry.validation.shape import NodeEntry
from flowmesh_shared.expressions import (
    ExpressionError,
    compile_expression,
    find_templates,
    member_path,
)
from flowmesh_shared.json_schemas import (
    CompiledSchemas,
    Validator,
    compile_schema,
    content_key,
    schema_problems,
)

__all__ = ["action_keys", "check_action_nodes", "check_action_spec", "find_action"]

INVALID = ErrorCode.VALIDATION_FAILED
#: What an action's request may read, and what its result's expressions may.
REQUEST_ROOTS = frozenset({"input"})
RESULT_ROOTS = frozenset({"input", "response"})
#: Headers an action may not set: credentials come from the connector.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
#: The largest version an action may have (the registry stores versions as PostgreSQL
#: integers): a node pinning a larger one is refused, never read.
MAX_VERSION = 2**31 - 1
_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Compiled input schemas of actions, by their content (:func:`content_key`).
_SCHEMAS = CompiledSchemas(256)


def check_action_spec(spec: ActionSpec) -> list[ProblemItem]:
    """Every problem of ``spec``, at paths from its root (``request.path``)."""
    problems = Problems()
    schema = _schema(spec.input_schema, "input_schema", problems)
    if spec.input_schema.get("type") != "object":
        problems.add("input_schema.type", INVALID, "an action's input is an object")
    if spec.output_schema:
        _schema(spec.output_schema, "output_schema", problems)
    if schema is not None and spec.example is not None:
        for item in schema_problems(schema, spec.example, root="example", templates=True):
            problems.add(item.path, INVALID, item.message)
    _check_request(spec, problems)
    for field in ("output", "failure", "message"):
        source = getattr(spec.result, field)
        if source is not None:
            _check_expression(f"result.{field}", source, RESULT_ROOTS, problems)
    return problems.sorted()


def _schema(schema: dict[str, Any], path: str, problems: Problems) -> Validator | None:
    compiled = compile_schema(schema)
    if isinstance(compiled, str):
        problems.add(path, INVALID, f"not a JSON Schema this service can use: {compiled}")
        return None
    return compiled


def _check_request(spec: ActionSpec, problems: Problems) -> None:
    request = spec.request
    path = request.path
    if not path.lstrip().startswith("{{"):
        problem = path_problem(_TEMPLATE.sub("x", path))
        if problem is not None:
            problems.add("request.path", INVALID, problem)
    for name in request.headers:
        if not _HEADER_NAME.fullmatch(name):
            problems.add(f"request.headers{member_path(name)}", INVALID, "not a header name")
        elif name.lower() in CREDENTIAL_HEADERS:
            message = f"{name} is a credential: the connector's auth sets it"
            problems.add(f"request.headers{member_path(name)}", INVALID, message)
        elif client_owned_header(name):
            message = f"{name} is set by the HTTP client, not by an action"
            problems.add(f"request.headers{member_path(name)}", INVALID, message)
    for index, status in enumerate(request.expect_status):
        if not 100 <= status <= 599:
            problems.add(f"request.expect_status[{index}]", INVALID, "an HTTP status is 100..599")
    parts = {"path": path, "headers": request.headers, "query": request.query}
    parts["body"] = request.body
    for part, value in parts.items():
        for where, template in find_templates(value):
            at = f"request.{part}{where}"
            if isinstance(template, ExpressionError):
                problems.add(at, INVALID, str(template))
                continue
            _check_roots(at, template.references.variables, REQUEST_ROOTS, problems)


def _check_expression(path: str, source: str, roots: frozenset[str], problems: Problems) -> None:
    try:
        expression = compile_expression(source)
    except ExpressionError as exc:
        problems.add(path, INVALID, str(exc))
        return
    _check_roots(path, expression.references.variables, roots, problems)


def _check_roots(
    path: str, read: frozenset[str], roots: frozenset[str], problems: Problems
) -> None:
    other = sorted(read - roots)
    if other:
        allowed = " and ".join(sorted(roots))
        message = f"an action reads {allowed} only, not {', '.join(other)}"
        if "secrets" in other:  # credentials are the connector's
            problems.add(path, ErrorCode.SECRET_NOT_ALLOWED, message)
        else:
            problems.add(path, ErrorCode.MISSING_VARIABLE, message)


# --- action nodes ------------------------------------------------------------------------


def find_action(key: ActionKey, known: Mapping[ActionKey, Action] | None) -> Action | None:
    """The action ``key`` names: a built-in one (version 1 or none), else the tenant's."""
    name, version = key
    if is_reserved(name):  # a built-in's name, or one no tenant's action may take
        builtin = builtin_action(name)
        return builtin if builtin is not None and version in (None, 1) else None
    return None if known is None else known.get(key)


def check_action_nodes(
    nodes: list[NodeEntry],
    known: Mapping[ActionKey, Action] | None,
    problems: Problems,
    max_tenant_actions: int = 64,
) -> list[str]:
    """Each action node's name, version and input; a tenant's action is looked up only
    when ``known`` is given (None skips the lookup, as for secrets). Past the first
    ``max_tenant_actions`` tenant actions (distinct name and version, in the order of
    :func:`action_keys`, which the shell loads) a node's action is refused at ``.action``.
    The tenant's own actions the nodes name, sorted."""
    named: set[ActionKey] = set()
    for path, parameters in _action_nodes(nodes):
        key = (parameters.action, parameters.version)
        if _key({"action": key[0], "version": key[1]}) and key not in named:
            if len(named) >= max_tenant_actions:
                message = f"a workflow names at most {max_tenant_actions} of the tenant's actions"
                problems.add(f"{path}.action", INVALID, message + " (name and version)")
                continue
            named.add(key)
        _check_node(path, parameters, known, problems)
    return sorted({name for name, _ in named})


def _check_node(
    path: str,
    parameters: ActionParameters,
    known: Mapping[ActionKey, Action] | None,
    problems: Problems,
) -> None:
    name, version = parameters.action, parameters.version
    if not re.fullmatch(ACTION_NAME_PATTERN, name):
        problems.add(f"{path}.action", ErrorCode.INVALID_NODES, f"must match {ACTION_NAME_PATTERN}")
        return
    if version is not None and not 1 <= version <= MAX_VERSION:
        message = f"versions start at 1 and end at {MAX_VERSION}"
        problems.add(f"{path}.version", ErrorCode.INVALID_NODES, message)
        return
    action = find_action((name, version), known)
    if action is None and (is_reserved(name) or known is not None):
        where = f"{path}.version" if version is not None else f"{path}.action"
        what = f"action {shown(name)}" + (f" version {version}" if version is not None else "")
        problems.add(where, ErrorCode.MISSING_VARIABLE, f"{what} does not exist")
        return
    if action is None:
        return
    schema = action.spec.input_schema
    compiled = _SCHEMAS.get(content_key(schema), schema)
    if isinstance(compiled, str):  # a stored spec was checked: only an old one can fail here
        problems.add(
            f"{path}.action", INVALID, f"the action's input_schema is unusable: {compiled}"
        )
        return
    for item in schema_problems(compiled, parameters.input, root=f"{path}.input", templates=True):
        problems.add(item.path, INVALID, item.message)


def action_keys(raw: Any) -> list[ActionKey]:
    """The tenant actions a decoded document's action nodes (and maps' per-item action
    templates) may name, each once, in the document's order (the validator's), read before
    validation so the shell can load just those; built-in names and anything malformed are
    left out (the validator reports it)."""
    nodes = raw.get("nodes") if isinstance(raw, dict) else None
    keys: dict[ActionKey, None] = {}
    for node in nodes if isinstance(nodes, list) else []:
        parameters = node.get("parameters") if isinstance(node, dict) else None
        if not isinstance(parameters, dict):
            continue
        if node.get("type") == "action":
            keys.update(dict.fromkeys(_key(parameters)))
        template = parameters.get("node") if node.get("type") == "map" else None
        if isinstance(template, dict) and template.get("type") == "action":
            inner = template.get("parameters")
            keys.update(dict.fromkeys(_key(inner) if isinstance(inner, dict) else ()))
    return list(keys)


def _key(parameters: dict[str, Any]) -> tuple[ActionKey, ...]:
    name, version = parameters.get("action"), parameters.get("version")
    if not isinstance(name, str) or not re.fullmatch(ACTION_NAME_PATTERN, name):
        return ()
    if is_reserved(name):
        return ()
    if version is not None and (type(version) is not int or not 1 <= version <= MAX_VERSION):
        return ()
    return ((name, version),)


def _action_nodes(nodes: list[NodeEntry]) -> Iterator[tuple[str, ActionParameters]]:
    """Each action node's parameters (a map's per-item action template's too), by path."""
    for entry in nodes:
        parameters = entry.node.parameters if entry.node is not None else None
        path = f"{entry.path}.parameters"
        if isinstance(parameters, ActionParameters):
            yield path, parameters
        template = getattr(parameters, "node", None)
        if isinstance(template, StepTemplate) and template.type == "action":
            try:
                item = msgspec.convert(template.parameters, ActionParameters, strict=True)
            except msgspec.ValidationError:
                continue  # the map's template check reports it
            yield f"{path}.node.parameters", item
