"""Tenant actions: a tenant's own action specs, versioned like workflows (DESIGN section 16).

A PUT stores version 1, or the next version when the spec differs from the current one (the
same spec answers the current version, and nothing is stored or audited). Versions are
immutable; a DELETE removes the action with every version (one made again under the name
starts at version 1) and turns the workflow versions that name it ``invalid``, until it is
made again (:mod:`flowmesh_registry.dependents`; the input a version gives is then checked
again when its step runs). Built-in actions are answered too, so a node's action can always be
read: as version 1, ``builtin``, never changed nor deleted.

Limits (registry settings): ``max_actions`` per tenant, ``max_action_versions`` per action
and ``max_action_bytes`` of stored specs (every version's) per tenant, each 409
ACTION_LIMIT_REACHED past it; a page holds at most ``limit`` actions and ``page_max_bytes``
of specs (at least one). The PUTs of one tenant take turns under a transaction-scoped
advisory lock, so concurrent ones cannot pass a limit together.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import asyncpg
import msgspec

from flowmesh_proto.action_library import builtin_action, builtin_actions, is_reserved
from flowmesh_proto.actions import (
    ACTION_NAME_PATTERN,
    MAX_PAGE,
    MAX_SPEC_BYTES,
    Action,
    ActionDeleted,
    ActionKey,
    ActionList,
    ActionPage,
    ActionSpec,
    ActionVersions,
)
from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_registry import audit
from flowmesh_registry.caller import Caller
from flowmesh_registry.cursors import CursorError, decode_cursor, encode_cursor
from flowmesh_registry.db import Database
from flowmesh_registry.dependents import (
    invalidate_users,
    revalidate_users,
    version_refs,
    version_text,
)
from flowmesh_registry.problems import checked_version, field_problem
from flowmesh_registry.resources import check_tenant
from flowmesh_registry.validation.actions import check_action_spec
from flowmesh_shared.errors import FlowmeshError, NotFound

NAME_SORT, VERSION_SORT = "name", "version"
_NAME = re.compile(ACTION_NAME_PATTERN)

# The PUTs of one tenant queue here, so the counts below cannot be passed by two at once.
LOCK_TENANT = "SELECT pg_advisory_xact_lock(hashtextextended('actions:' || $1, 0))"
COUNT = "SELECT count(*) FROM actions WHERE tenant_id = $1"
STORED_BYTES = "SELECT coalesce(sum(stored_bytes), 0) FROM actions WHERE tenant_id = $1"
CURRENT_FOR_UPDATE = """
SELECT v.tenant_id, v.name, v.version, v.spec, v.created_at, v.created_by
FROM actions a
JOIN action_versions v
  ON v.tenant_id = a.tenant_id AND v.name = a.name AND v.version = a.current_version
WHERE a.tenant_id = $1 AND a.name = $2
FOR UPDATE OF a"""
INSERT_ACTION = """
INSERT INTO actions (tenant_id, name, current_version, stored_bytes, created_by)
VALUES ($1, $2, 1, $4, $3)"""
SET_CURRENT = """
UPDATE actions SET current_version = $3, stored_bytes = stored_bytes + $4
WHERE tenant_id = $1 AND name = $2"""
INSERT_VERSION = """
INSERT INTO action_versions AS v (tenant_id, name, version, spec, created_by)
VALUES ($1, $2, $3, $4, $5)
RETURNING v.tenant_id, v.name, v.version, v.spec, v.created_at, v.created_by"""
GET = """
SELECT v.tenant_id, v.name, v.version, v.spec, v.created_at, v.created_by
FROM actions a
JOIN action_versions v ON v.tenant_id = a.tenant_id AND v.name = a.name
WHERE a.tenant_id = $1 AND a.name = $2 AND v.version = coalesce($3::integer, a.current_version)"""
EXISTS = "SELECT 1 FROM actions WHERE tenant_id = $1 AND name = $2"
LIST = """
SELECT v.tenant_id, v.name, v.version, v.spec, v.created_at, v.created_by
FROM actions a
JOIN action_versions v
  ON v.tenant_id = a.tenant_id AND v.name = a.name AND v.version = a.current_version
WHERE a.tenant_id = $1 AND ($2::text IS NULL OR a.name > $2)
  AND ($3::text IS NULL OR coalesce(v.spec ->> 'category', 'integration') = $3)
ORDER BY a.name
LIMIT $4"""
VERSIONS = """
SELECT v.tenant_id, v.name, v.version, v.spec, v.created_at, v.created_by
FROM action_versions v
WHERE v.tenant_id = $1 AND v.name = $2 AND ($3::integer IS NULL OR v.version < $3)
ORDER BY v.version DESC
LIMIT $4"""
DELETE = "DELETE FROM actions WHERE tenant_id = $1 AND name = $2 RETURNING tenant_id"
#: The versions a definition names, one row per (name, pinned version or null: current).
NAMED = """
SELECT v.tenant_id, v.name, v.version, v.spec, v.created_at, v.created_by, k.version AS pinned
FROM unnest($2::text[], $3::integer[]) AS k (name, version)
JOIN actions a ON a.tenant_id = $1 AND a.name = k.name
JOIN action_versions v ON v.tenant_id = a.tenant_id AND v.name = a.name
  AND v.version = coalesce(k.version, a.current_version)"""

_spec_decoder = msgspec.json.Decoder(ActionSpec)
T = TypeVar("T")


class ActionOperations:
    def __init__(
        self,
        db: Database,
        *,
        max_actions: int = 1000,
        max_versions: int = 1000,
        max_bytes: int = 256 * 1024 * 1024,
        page_max_bytes: int = 1024 * 1024,
    ) -> None:
        self.db = db
        self.max_actions = max_actions
        self.max_versions = max_versions
        self.max_bytes = max_bytes
        self.page_max_bytes = page_max_bytes

    async def put(self, caller: Caller, name: str, spec: ActionSpec) -> Action:
        """Version 1, the next version, or (the same spec) the current one; 422 at the
        path of every problem, 409 past a limit."""
        stored = msgspec.to_builtins(spec)
        size = len(msgspec.json.encode(stored))
        problems = _name_problems(name)
        if size > MAX_SPEC_BYTES:
            message = f"the spec is larger than {MAX_SPEC_BYTES} bytes of JSON"
            problems.append(
                ProblemItem(path="$", code=ErrorCode.VALIDATION_FAILED.name, message=message)
            )
        else:  # compiling a tenant's schemas can take a while: off the loop
            problems += await asyncio.to_thread(check_action_spec, spec)
        if problems:
            ordered = sorted(problems, key=lambda p: p.path)
            code = ErrorCode.__members__.get(ordered[0].code, ErrorCode.VALIDATION_FAILED)
            raise FlowmeshError(code, ordered[0].message, errors=ordered)
        async with self.db.tenant_tx(caller.tenant) as conn:
            await conn.execute(LOCK_TENANT, caller.tenant)
            current = await conn.fetchrow(CURRENT_FOR_UPDATE, caller.tenant, name)
            if current is not None and current["spec"] == stored:
                check_tenant(current, caller.tenant)
                return _action(current)
            version = await self._next_version(conn, caller, name, current, size)
            row = await conn.fetchrow(
                INSERT_VERSION, caller.tenant, name, version, stored, caller.actor
            )
            check_tenant(row, caller.tenant)
            detail: dict[str, object] = {"version": version}
            if version == 1:  # made (again): versions its deletion invalidated are valid again
                restored = await revalidate_users(conn, caller.tenant, "action", name)
                valid = [version_text(r) for r in restored if r["validation_status"] == "valid"]
                detail["revalidated"] = valid
            await audit.record(conn, caller, "action.put", f"action:{name}", detail=detail)
        return _action(row)

    async def _next_version(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        name: str,
        current: asyncpg.Record | None,
        size: int,
    ) -> int:
        """Make room for the next version of ``size`` bytes (the action's row, or its
        pointer moved), or 409."""
        held = await conn.fetchval(STORED_BYTES, caller.tenant)
        if held + size > self.max_bytes:
            raise _limit(
                f"the tenant's actions hold {held} bytes of specs: {size} more would pass "
                f"{self.max_bytes}, the most they may hold (delete actions to make room)"
            )
        if current is None:
            if await conn.fetchval(COUNT, caller.tenant) >= self.max_actions:
                raise _limit(f"the tenant has {self.max_actions} actions, the most it may have")
            try:
                await conn.execute(INSERT_ACTION, caller.tenant, name, caller.actor, size)
            except asyncpg.ForeignKeyViolationError as exc:  # only a service names no tenant
                raise NotFound(f"tenant {caller.tenant!r} was not found") from exc
            return 1
        version: int = current["version"] + 1
        if version > self.max_versions:
            raise _limit(f"action {name} has {self.max_versions} versions, the most it may have")
        await conn.execute(SET_CURRENT, caller.tenant, name, version, size)
        return version

    async def get(self, tenant: str, name: str, version: int | None = None) -> Action:
        """A built-in action (version 1), or the tenant's at its current version or
        ``version``; 404 otherwise."""
        checked_version(version, "version")
        builtin = builtin_action(name)
        if builtin is not None:
            if version not in (None, 1):
                raise NotFound(f"action {name} is built in: its only version is 1")
            return builtin
        if not _NAME.fullmatch(name):
            raise not_found(name)
        async with self.db.tenant_tx(tenant) as conn:
            row = await conn.fetchrow(GET, tenant, name, version)
            exists = row is not None or await conn.fetchval(EXISTS, tenant, name) is not None
        if row is None and exists:
            raise NotFound(f"action {name} has no version {version}")
        if row is None:
            raise not_found(name)
        check_tenant(row, tenant)
        return _action(row)

    async def list_actions(self, tenant: str, request: ActionList) -> ActionPage:
        """The built-in actions and the tenant's current versions, merged by name."""
        _check_limit(request.limit)
        if request.cursor is not None and request.after is not None:
            raise field_problem("after", "give cursor or after, not both")
        after = request.after
        if request.cursor is not None:
            after = _cursor_key(request.cursor, NAME_SORT, str)
        if after is not None and not _NAME.fullmatch(after):
            raise field_problem("after", f"after must match {ACTION_NAME_PATTERN}")
        wanted = request.limit + 1
        async with self.db.tenant_tx(tenant) as conn:
            rows = await conn.fetch(LIST, tenant, after, request.category, wanted)
        own = []
        for row in rows:
            check_tenant(row, tenant)
            own.append(_action(row))
        builtins = (
            action
            for name, action in sorted(builtin_actions().items())
            if (after is None or name > after)
            and (request.category is None or action.spec.category == request.category)
        )
        merged = sorted([*own, *list(builtins)[:wanted]], key=lambda action: action.name)
        return self._page(merged[:wanted], request.limit, NAME_SORT, lambda a: a.name)

    async def list_versions(self, tenant: str, request: ActionVersions) -> ActionPage:
        """Every version of one action, newest first (a built-in action has one)."""
        _check_limit(request.limit)
        before = None
        if request.cursor is not None:
            before = _cursor_key(request.cursor, VERSION_SORT, int)
        builtin = builtin_action(request.name)
        if builtin is not None:
            items = [builtin] if before is None else []
            return ActionPage(items=items, next_cursor=None, has_more=False)
        if not _NAME.fullmatch(request.name):
            raise not_found(request.name)
        async with self.db.tenant_tx(tenant) as conn:
            rows = await conn.fetch(VERSIONS, tenant, request.name, before, request.limit + 1)
            if not rows and await conn.fetchval(EXISTS, tenant, request.name) is None:
                raise not_found(request.name)
        items = []
        for row in rows:
            check_tenant(row, tenant)
            items.append(_action(row))
        return self._page(items, request.limit, VERSION_SORT, lambda a: a.version)

    async def delete(self, caller: Caller, name: str) -> ActionDeleted:
        if builtin_action(name) is not None:
            raise FlowmeshError(
                ErrorCode.CONFLICT, f"action {name} is built in: it cannot be deleted"
            )
        if not _NAME.fullmatch(name):
            raise not_found(name)
        async with self.db.tenant_tx(caller.tenant) as conn:
            row = await conn.fetchrow(DELETE, caller.tenant, name)
            if row is None:
                raise not_found(name)
            check_tenant(row, caller.tenant)
            invalidated = await invalidate_users(conn, caller.tenant, "action", name)
            detail = {"invalidated": [version_text(r) for r in invalidated]}
            await audit.record(conn, caller, "action.delete", f"action:{name}", detail=detail)
        return ActionDeleted(name=name, invalidated=version_refs(invalidated))

    def _page(
        self, items: list[Action], limit: int, sort: str, key: Callable[[Action], object]
    ) -> ActionPage:
        """At most ``limit`` of ``items`` and ``page_max_bytes`` of their specs (one at
        least); ``items`` holds one more than a full page when there is more."""
        taken: list[Action] = []
        size = 0
        for action in items[:limit]:
            size += len(msgspec.json.encode(action.spec))
            if taken and size > self.page_max_bytes:
                break
            taken.append(action)
        has_more = len(items) > len(taken)
        cursor = encode_cursor(sort, [key(taken[-1])]) if has_more else None
        return ActionPage(items=taken, next_cursor=cursor, has_more=has_more)


def not_found(name: str) -> FlowmeshError:
    return NotFound(f"action {name} was not found")


def _limit(message: str) -> FlowmeshError:
    return FlowmeshError(ErrorCode.ACTION_LIMIT_REACHED, message)


def _name_problems(name: str) -> list[ProblemItem]:
    code = ErrorCode.VALIDATION_FAILED.name
    if not _NAME.fullmatch(name):
        return [ProblemItem(path="name", code=code, message=f"must match {ACTION_NAME_PATTERN}")]
    if is_reserved(name):
        first = name.split(".", 1)[0]
        message = f"names under {first}. are kept for built-in actions"
        return [ProblemItem(path="name", code=code, message=message)]
    return []


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise field_problem("limit", f"limit must be between 1 and {MAX_PAGE}")


def _cursor_key(cursor: str, sort: str, kind: type[T]) -> T:
    """The one key a cursor of ours holds, or 422 naming ``cursor``."""
    try:
        key = decode_cursor(cursor, sort)
    except CursorError as exc:
        raise field_problem("cursor", str(exc)) from exc
    if len(key) != 1 or type(key[0]) is not kind:
        raise field_problem("cursor", "cursor is not valid")
    value: T = key[0]
    return value


def _action(row: asyncpg.Record) -> Action:
    return Action(
        name=row["name"],
        version=row["version"],
        builtin=False,
        spec=_spec_decoder.decode(msgspec.json.encode(row["spec"])),
        created_at=row["created_at"],
        created_by=row["created_by"],
    )


async def known_actions(
    conn: asyncpg.Connection, tenant: str, keys: Iterable[ActionKey]
) -> Mapping[ActionKey, Action]:
    """The tenant's actions a definition names (:func:`~flowmesh_registry.validation.
    actions.action_keys`), by key, in one query: what exists of them."""
    wanted = list(keys)
    if not wanted:
        return {}
    names = [name for name, _ in wanted]
    versions = [version for _, version in wanted]
    found: dict[ActionKey, Action] = {}
    for row in await conn.fetch(NAMED, tenant, names, versions):
        check_tenant(row, tenant)
        found[(row["name"], row["pinned"])] = _action(row)
    return found
