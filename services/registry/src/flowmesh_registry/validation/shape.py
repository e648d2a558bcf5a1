"""Shape: the document's size and nesting, then each top-level field, node, edge and trigger
decoded on its own, so one bad part hides none of the others."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import msgspec

from flowmesh_proto.catalog import NODE_TYPES, TRIGGER_KINDS
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.storable import unstorable
from flowmesh_proto.workflow import Definition, Edge, Node, Trigger
from flowmesh_registry.validation.problems import (
    DOCUMENT,
    Problems,
    add_decode_error,
    member,
    shown,
)

_FIELDS = {info.encode_name: info for info in msgspec.structs.fields(Definition)}
_PARTS = ("nodes", "edges", "triggers")
_TRIGGER_KINDS = tuple(TRIGGER_KINDS)
_NODE_TYPE_NAMES = ", ".join(sorted(NODE_TYPES))


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """One item of ``nodes``: its id when it has a string one, decoded when its shape is right."""

    index: int
    id: str | None
    node: Node | None
    raw: Any

    @property
    def path(self) -> str:
        return f"nodes[{self.index}]"


@dataclass(frozen=True, slots=True)
class Shape:
    """What decoded: the fields, nodes, edges and triggers whose shape is right."""

    fields: dict[str, Any]
    nodes: list[NodeEntry]
    edges: list[tuple[int, Edge]]
    triggers: list[tuple[int, Trigger]]
    edge_count: int
    has_node_list: bool  # False when ``nodes`` is missing or no array: node ids are unknown
    definition: Definition | None


def check_document(
    raw: Any, *, max_bytes: int, max_depth: int, problems: Problems
) -> dict[Any, Any] | None:
    """The document when it is an object of sane size and depth, else None (reported)."""
    if not isinstance(raw, dict):
        kind = "an array" if isinstance(raw, list) else f"a {type(raw).__name__}"
        problems.add(
            DOCUMENT, ErrorCode.VALIDATION_FAILED, f"a definition is an object, not {kind}"
        )
        return None
    if _nested_deeper_than(raw, max_depth):
        problems.add(DOCUMENT, ErrorCode.VALIDATION_FAILED, f"nested deeper than {max_depth}")
        return None
    found = unstorable(raw)
    if found is not None:  # every string: input_schema, vars, tags, descriptions ...
        problems.add(found.path, ErrorCode.VALIDATION_FAILED, found.reason)
        return None
    try:
        size = len(msgspec.json.encode(raw))
    except (msgspec.EncodeError, TypeError, ValueError, OverflowError) as exc:
        problems.add(DOCUMENT, ErrorCode.VALIDATION_FAILED, f"not a JSON document: {exc}")
        return None
    if size > max_bytes:
        problems.add(
            DOCUMENT, ErrorCode.PAYLOAD_TOO_LARGE, f"{size} bytes, more than {max_bytes} allowed"
        )
        return None
    return raw


def _nested_deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def decode_shape(document: dict[Any, Any], problems: Problems) -> Shape:
    before = len(problems)
    for key in document:
        if key not in Definition.KEYS:
            problems.add(member("", key).lstrip("."), ErrorCode.VALIDATION_FAILED, "unknown field")
    fields: dict[str, Any] = {}
    for name, info in _FIELDS.items():
        if name in document and name not in _PARTS:
            try:
                fields[name] = msgspec.convert(document[name], info.type, strict=True)
            except msgspec.ValidationError as exc:
                add_decode_error(problems, name, ErrorCode.VALIDATION_FAILED, exc)
        elif name not in document and info.required:
            problems.add(name, ErrorCode.VALIDATION_FAILED, "required field is missing")
    nodes = _decode_nodes(document, problems)
    edges = [
        (i, cast(Edge, value))
        for i, value in _decode_items(document, "edges", Edge, ErrorCode.INVALID_EDGES, problems)
    ]
    triggers = [
        (i, cast(Trigger, value))
        for i, value in _decode_items(
            document, "triggers", Trigger, ErrorCode.VALIDATION_FAILED, problems
        )
    ]
    definition = None
    if len(problems) == before:
        try:
            definition = msgspec.convert(document, Definition, strict=True)
        except msgspec.ValidationError as exc:  # every part decoded: only a safety net
            add_decode_error(problems, "", ErrorCode.VALIDATION_FAILED, exc)
    edge_count = len(document["edges"]) if isinstance(document.get("edges"), list) else 0
    has_node_list = isinstance(document.get("nodes"), list)
    return Shape(fields, nodes, edges, triggers, edge_count, has_node_list, definition)


def _items(
    document: dict[Any, Any], name: str, problems: Problems, *, required: bool = False
) -> list[Any]:
    if name not in document:
        if required:
            problems.add(name, ErrorCode.VALIDATION_FAILED, "required field is missing")
        return []
    items = document[name]
    if not isinstance(items, list):
        problems.add(name, ErrorCode.VALIDATION_FAILED, f"expected an array, got {_kind(items)}")
        return []
    return items


def _decode_items(
    document: dict[Any, Any], name: str, target: Any, code: ErrorCode, problems: Problems
) -> list[tuple[int, Any]]:
    decoded: list[tuple[int, Any]] = []
    for index, item in enumerate(_items(document, name, problems)):
        path = f"{name}[{index}]"
        if name == "triggers" and not _tag_known(item, "kind", _TRIGGER_KINDS):
            _report_tag(item, path, "kind", "trigger kind", ", ".join(_TRIGGER_KINDS), problems)
            continue
        try:
            decoded.append((index, msgspec.convert(item, target, strict=True)))
        except msgspec.ValidationError as exc:
            add_decode_error(problems, path, code, exc)
    return decoded


def _decode_nodes(document: dict[Any, Any], problems: Problems) -> list[NodeEntry]:
    items = _items(document, "nodes", problems, required=True)
    if "nodes" in document and isinstance(document["nodes"], list) and not items:
        problems.add("nodes", ErrorCode.INVALID_NODES, "a workflow needs at least one node")
    entries = []
    for index, item in enumerate(items):
        path = f"nodes[{index}]"
        node_id = item.get("id") if isinstance(item, dict) else None
        node: Node | None = None
        if not _tag_known(item, "type", NODE_TYPES):
            _report_tag(item, path, "type", "node type", _NODE_TYPE_NAMES, problems, nodes=True)
        else:
            try:
                node = msgspec.convert(item, cast(Any, Node), strict=True)
            except msgspec.ValidationError as exc:
                add_decode_error(problems, path, ErrorCode.INVALID_NODES, exc)
        entries.append(NodeEntry(index, node_id if isinstance(node_id, str) else None, node, item))
    return entries


def _tag_known(item: Any, tag: str, known: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get(tag), str) and item[tag] in known


def _report_tag(
    item: Any,
    path: str,
    tag: str,
    what: str,
    known: str,
    problems: Problems,
    *,
    nodes: bool = False,
) -> None:
    code = ErrorCode.INVALID_NODES if nodes else ErrorCode.VALIDATION_FAILED
    if not isinstance(item, dict):
        problems.add(path, code, f"expected an object, got {_kind(item)}")
    elif tag not in item:
        problems.add(f"{path}.{tag}", code, "required field is missing")
    else:
        problems.add(f"{path}.{tag}", code, f"unknown {what} {shown(item[tag])}; one of: {known}")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else f"a {type(value).__name__}")
