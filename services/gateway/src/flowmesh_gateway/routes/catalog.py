"""The catalog (DESIGN section 16, viewer): what a workflow's nodes can be. Node types and
built-in actions are the same for every tenant (built once, in :mod:`flowmesh_proto.entries`);
the tenant's own actions are read from the registry a page at a time, never all at once.

Entries sort by ``kind:name``, so every action comes before every node type: a page asks the
registry (:class:`~flowmesh_proto.actions.ActionList`, built-in and own actions merged) for
at most ``limit`` actions after the cursor, and :func:`~flowmesh_proto.entries.
tenant_catalog_page` fills the rest with node types only when the registry has no more.
"""

from __future__ import annotations

import re
from typing import cast

from aiohttp import web

from flowmesh_gateway.api import Call, Route
from flowmesh_gateway.bodies import json_response, query_int, unprocessable
from flowmesh_proto.actions import (
    ACTION_CATEGORIES,
    ACTION_NAME_PATTERN,
    ActionCategory,
    ActionList,
    ActionPage,
)
from flowmesh_proto.entries import (
    ENTRY_CATEGORIES,
    ENTRY_KINDS,
    CatalogEntry,
    CatalogPage,
    action_entry,
    builtin_action_catalog,
    tenant_catalog_page,
)

BASE = "/api/v1/{tenant}/catalog"
_ACTION_NAME = re.compile(ACTION_NAME_PATTERN)


def _choice(call: Call, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = call.request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise unprocessable(f"{name} must be one of {', '.join(allowed)}", name)
    return raw


def _cursor(call: Call) -> str | None:
    raw = call.request.query.get("cursor")
    if raw is None or raw == "":
        return None
    kind, sep, name = raw.partition(":")
    if not sep or kind not in ENTRY_KINDS or not name:
        raise unprocessable("cursor must be the next_cursor of a page", "cursor")
    if kind == "action" and not _ACTION_NAME.fullmatch(name):
        raise unprocessable("cursor must be the next_cursor of a page", "cursor")
    return raw


async def _actions(
    call: Call, limit: int, cursor: str | None, kind: str | None, category: str | None
) -> tuple[list[CatalogEntry], bool]:
    """The entries of the next ``limit`` actions after ``cursor`` at most, and whether the
    registry has more (its pages may be shorter than asked, when specs are large)."""
    if kind not in (None, "action") or (category is not None and category not in ACTION_CATEGORIES):
        return [], False
    after = None
    if cursor is not None:
        cursor_kind, _, after = cursor.partition(":")
        if cursor_kind != "action":  # past every action already
            return [], False
    request = ActionList(limit=limit, after=after, category=cast(ActionCategory | None, category))
    page: ActionPage = await call.registry(request)
    builtins = {entry.name: entry for entry in builtin_action_catalog()}
    entries = [
        builtins[action.name] if action.builtin else action_entry(action) for action in page.items
    ]
    return entries, page.has_more


async def list_catalog(call: Call) -> web.Response:
    limit = query_int(call.request, "limit", 1, 100) or 50
    cursor = _cursor(call)
    kind = _choice(call, "kind", ENTRY_KINDS)
    category = _choice(call, "category", ENTRY_CATEGORIES)
    actions, more = await _actions(call, limit, cursor, kind, category)
    page = tenant_catalog_page(
        actions, more_actions=more, limit=limit, cursor=cursor, kind=kind, category=category
    )
    return json_response(page)


ROUTES = [
    Route(
        method="GET",
        path=BASE,
        handler=list_catalog,
        role="viewer",
        summary="The catalog: every node type and every action the tenant can use (built-in "
        "and its own), with schemas and an example (a list response)",
        operation_id="catalog_list",
        response=CatalogPage,
        query=(
            ("limit", "integer"),
            ("cursor", "string"),
            ("kind", "string"),
            ("category", "string"),
        ),
    ),
]
