"""The catalog's entries (DESIGN section 16, ``GET /catalog``): what each node type is, for
people and for forms. Pure data, generated from the language's own Structs.

An entry's ``parameters_schema`` is the JSON Schema msgspec generates for the node type's
parameters Struct (:mod:`flowmesh_proto.workflow`, the one the validator decodes and the
executor reads), its ``description`` that Struct's docstring, and its ``output_schema`` the
schema of what the executor outputs for it (:mod:`flowmesh_proto.outputs`). Each schema is
self-contained (its ``$ref`` inlined). What is written by hand here is only each type's
category and a valid example; a node type of :data:`~flowmesh_proto.catalog.NODE_KINDS`
without one (or one for no type) fails at import.

Categories: ``control`` (the graph's flow: noop, condition, switch, map, workflow),
``data`` (transform), ``integration`` (what talks to the outside: http, task), ``events``
(publish) and ``waiting`` (a run parks: delay, wait_for_event).

Ordering and cursor: entries are sorted by ``(kind, name)``; a page's cursor is the last
entry's ``kind:name`` and the next page starts after it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import msgspec

from flowmesh_proto.action_library import builtin_actions
from flowmesh_proto.actions import Action
from flowmesh_proto.catalog import NODE_KINDS
from flowmesh_proto.events import EventEnvelope
from flowmesh_proto.outputs import HttpOutput, PublishOutput
from flowmesh_proto.registry import Role

__all__ = [
    "ENTRY_CATEGORIES",
    "ENTRY_KINDS",
    "CatalogEntry",
    "CatalogPage",
    "EntryCategory",
    "EntryKind",
    "Requires",
    "action_entry",
    "builtin_action_catalog",
    "catalog_page",
    "cursor_of",
    "node_catalog",
    "self_contained_schema",
    "tenant_catalog_page",
]

EntryKind = Literal["node", "action"]
EntryCategory = Literal["control", "data", "integration", "events", "waiting", "notification", "ai"]
ENTRY_KINDS: tuple[str, ...] = get_args(EntryKind)
ENTRY_CATEGORIES: tuple[str, ...] = get_args(EntryCategory)
#: The role that may put a node type in a workflow (to write a definition at all).
NODE_ROLE: Role = "editor"


class Requires(msgspec.Struct, frozen=True, kw_only=True):
    """What using an entry needs: a role, and secrets the entry itself needs (a node type
    needs none by itself; an ``http`` node may still read some in its request)."""

    role: Role
    secrets: list[str]


class CatalogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One node type or one action (built-in or the tenant's) of the catalog."""

    kind: EntryKind
    name: str
    description: str
    category: EntryCategory
    parameters_schema: dict[str, Any]
    output_schema: dict[str, Any]
    example: dict[str, Any]
    requires: Requires


class CatalogPage(msgspec.Struct, frozen=True, kw_only=True):
    """A list response of catalog entries."""

    items: list[CatalogEntry]
    next_cursor: str | None
    has_more: bool


@dataclass(frozen=True, slots=True)
class _NodeDoc:
    category: EntryCategory
    #: The type of the step's output (a Struct of :mod:`flowmesh_proto.outputs` or a plain one).
    output: Any
    #: A valid ``parameters`` for a node of this type.
    example: Mapping[str, Any]


_CHILD = "0190a0c2-7c44-7d5e-8a9b-1c2d3e4f5a6b"

_NODE_DOCS: Mapping[str, _NodeDoc] = {
    "noop": _NodeDoc("control", None, {}),
    "transform": _NodeDoc(
        "data", Any, {"output": {"order": "{{ trigger.data.id }}", "total": "{{ vars.total }}"}}
    ),
    "condition": _NodeDoc("control", bool, {"expression": "trigger.data.total > 100"}),
    "switch": _NodeDoc(
        "control", str, {"expression": "trigger.data.region", "cases": ["eu", "us"]}
    ),
    "delay": _NodeDoc("waiting", None, {"duration": "PT30S"}),
    "http": _NodeDoc(
        "integration",
        HttpOutput,
        {
            "url": "https://api.example.com/orders",
            "method": "POST",
            "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
            "body": {"id": "{{ trigger.data.id }}"},
            "expect_status": [200, 201],
        },
    ),
    "action": _NodeDoc(
        "integration",
        Any,
        {
            "action": "slack.post_message",
            "connector": "slack",
            "input": {"channel": "C0123456789", "text": "Order {{ trigger.data.id }} shipped"},
        },
    ),
    "map": _NodeDoc(
        "control",
        list[Any],
        {
            "items": "trigger.data.lines",
            "node": {"type": "transform", "parameters": {"output": "{{ item.sku }}"}},
            "concurrency": 5,
        },
    ),
    "workflow": _NodeDoc(
        "control", Any, {"workflow_id": _CHILD, "input": {"id": "{{ trigger.data.id }}"}}
    ),
    "task": _NodeDoc(
        "integration",
        Any,
        {"queue": "invoices", "input": {"order": "{{ trigger.data.id }}"}, "timeout": "PT5M"},
    ),
    "publish": _NodeDoc(
        "events", PublishOutput, {"event": "order.shipped", "data": {"id": "{{ trigger.data.id }}"}}
    ),
    "wait_for_event": _NodeDoc(
        "waiting",
        EventEnvelope,
        {
            "event": "payment.received",
            "match": "event.data.order == trigger.data.id",
            "timeout": "PT1H",
        },
    ),
}


def self_contained_schema(kind: Any) -> dict[str, Any]:
    """The JSON Schema msgspec generates for ``kind``, every ``$ref`` replaced by its
    definition (the language's Structs are not recursive)."""
    schema: dict[str, Any] = msgspec.json.schema(kind)
    definitions: dict[str, Any] = schema.pop("$defs", {})

    def inline(value: Any) -> Any:
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(item) for key, item in value.items()}
        if isinstance(value, list):
            return [inline(item) for item in value]
        return value

    inlined: dict[str, Any] = inline(schema)
    return inlined


def _node_entry(name: str, doc: _NodeDoc) -> CatalogEntry:
    parameters = NODE_KINDS[name].parameters
    return CatalogEntry(
        kind="node",
        name=name,
        description=" ".join((parameters.__doc__ or "").split()),
        category=doc.category,
        parameters_schema=self_contained_schema(parameters),
        output_schema=self_contained_schema(doc.output),
        example=dict(doc.example),
        requires=Requires(role=NODE_ROLE, secrets=[]),
    )


@functools.cache
def node_catalog() -> tuple[CatalogEntry, ...]:
    """An entry for every node type, in the order of :data:`NODE_KINDS` (the docs' order)."""
    return tuple(_node_entry(name, _NODE_DOCS[name]) for name in NODE_KINDS)


@functools.cache
def _action_parameters() -> dict[str, Any]:
    """The action node's parameters schema, built once (:func:`action_entry` copies what
    it changes)."""
    return self_contained_schema(NODE_KINDS["action"].parameters)


def action_entry(action: Action) -> CatalogEntry:
    """The entry of one action: its node's parameters with ``input`` the action's schema."""
    spec = action.spec
    parameters = _action_parameters()
    properties = dict(parameters.get("properties", {}))
    properties["action"] = {"const": action.name, "description": "This action's name."}
    properties["input"] = {"description": properties["input"].get("description", "")}
    properties["input"] |= spec.input_schema
    if action.builtin:
        properties.pop("version", None)
    parameters = {**parameters, "properties": properties}
    parameters["required"] = sorted({*parameters.get("required", []), "input"})
    connector = spec.connector
    example: dict[str, Any] = {
        "action": action.name,
        "connector": action.name.split(".", 1)[0] if action.builtin else "my-connector",
        "input": spec.example or {},
    }
    return CatalogEntry(
        kind="action",
        name=action.name,
        description=spec.description,
        category=spec.category,
        parameters_schema=parameters,
        output_schema=spec.output_schema,
        example=example,
        requires=Requires(
            role=NODE_ROLE, secrets=list(connector.secrets) if connector is not None else []
        ),
    )


@functools.cache
def builtin_action_catalog() -> tuple[CatalogEntry, ...]:
    """An entry for every built-in action."""
    return tuple(action_entry(action) for action in builtin_actions().values())


def cursor_of(entry: CatalogEntry) -> str:
    """Where the page after ``entry`` starts: ``kind:name``."""
    return f"{entry.kind}:{entry.name}"


def catalog_page(
    entries: Sequence[CatalogEntry],
    *,
    limit: int,
    cursor: str | None = None,
    kind: str | None = None,
    category: str | None = None,
) -> CatalogPage:
    """The page of ``entries`` (filtered by ``kind`` and ``category``) after ``cursor``."""
    chosen = sorted(
        (
            entry
            for entry in entries
            if (kind is None or entry.kind == kind)
            and (category is None or entry.category == category)
            and (cursor is None or cursor_of(entry) > cursor)
        ),
        key=cursor_of,
    )
    items = chosen[:limit]
    has_more = len(chosen) > limit
    return CatalogPage(
        items=items, next_cursor=cursor_of(items[-1]) if has_more else None, has_more=has_more
    )


def tenant_catalog_page(
    actions: Sequence[CatalogEntry],
    *,
    more_actions: bool,
    limit: int,
    cursor: str | None = None,
    kind: str | None = None,
    category: str | None = None,
) -> CatalogPage:
    """A page of a tenant's catalog: ``actions`` are the entries of the actions after
    ``cursor`` (built-in and the tenant's, at most ``limit``) as far as the registry gave
    them, ``more_actions`` whether it has more. Actions sort before node types, so node
    types join the page only when no action is left; otherwise the page ends where the
    registry's did (it may be shorter than ``limit``)."""
    entries = [*actions] if more_actions else [*actions, *node_catalog()]
    page = catalog_page(entries, limit=limit, cursor=cursor, kind=kind, category=category)
    if more_actions and page.items:
        return CatalogPage(items=page.items, next_cursor=cursor_of(page.items[-1]), has_more=True)
    return page


def _check() -> None:
    """Every node type has its category and example, and nothing else has."""
    if set(_NODE_DOCS) != set(NODE_KINDS):
        raise TypeError(
            f"flowmesh_proto.entries: node types {sorted(set(NODE_KINDS) ^ set(_NODE_DOCS))} "
            "have no entry, or an entry names no node type"
        )


_check()
