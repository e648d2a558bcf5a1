"""The actions a run's action nodes name, read when the run is taken up (DESIGN section 16).

A built-in action (:mod:`flowmesh_proto.action_library`) is taken from the library: its
only version is 1, so a node pinning another is left without one. Any other name is the
tenant's, asked of the registry (``ActionGet``: the pinned version, or the current one).
An action that does not exist is left out, never the run's failure: the steps naming it
fail with ``ActionNotFound``. Every other registry error is raised (the run is taken up
again later).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from flowmesh_proto.action_library import builtin_action, is_reserved
from flowmesh_proto.actions import Action, ActionGet, ActionKey, action_refs
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.workflow import Definition
from flowmesh_shared.errors import FlowmeshError

__all__ = ["read_actions"]

#: Requests for one run's actions in flight at once (the registry serves every tenant).
MAX_ASKED_AT_ONCE = 8
#: Asks the registry for one of the tenant's actions.
GetAction = Callable[[ActionGet], Awaitable[Action]]


async def read_actions(definition: Definition, get: GetAction) -> dict[ActionKey, Action]:
    """Each action the definition names, by (name, pinned version), that exists now; the
    tenant's are asked of the registry together, :data:`MAX_ASKED_AT_ONCE` at a time (a
    stored definition names at most the registry's ``max_workflow_actions``, 64)."""
    found: dict[ActionKey, Action] = {}
    keys = sorted({key for key, _ in action_refs(definition)}, key=lambda k: (k[0], k[1] or 0))
    asked: list[ActionKey] = []
    for key in keys:
        name, version = key
        if is_reserved(name):  # no tenant's action may take such a name
            builtin = builtin_action(name)
            if builtin is not None and version in (None, builtin.version):
                found[key] = builtin
        else:
            asked.append(key)
    turns = asyncio.Semaphore(MAX_ASKED_AT_ONCE)
    answers = await asyncio.gather(*(_one(get, key, turns) for key in asked))
    found.update((key, action) for key, action in zip(asked, answers, strict=True) if action)
    return found


async def _one(get: GetAction, key: ActionKey, turns: asyncio.Semaphore) -> Action | None:
    """The tenant's action ``key``; None when it does not exist (any other error raised)."""
    name, version = key
    try:
        async with turns:
            return await get(ActionGet(name=name, version=version))
    except FlowmeshError as exc:
        if exc.code is not ErrorCode.NOT_FOUND:
            raise
        return None
