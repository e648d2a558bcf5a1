"""The actions a run's action nodes name, read when the run is taken up (DESIGN section 16).

A built-in action (:mod:`flowmesh_proto.action_library`) is taken from the library: its
only version is 1, so a node pinning another is left without one. Any other name is the
tenant's, asked of the registry (``ActionGet``: the pinned version, or the current one).
An action that does not exist is left out, never the run's failure: the steps naming it
fail with ``ActionNotFound``. Every other registry error is raised (the run is taken up
again later).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from flowmesh_proto.action_library import builtin_action, is_reserved
from flowmesh_proto.actions import Action, ActionGet, ActionKey, action_refs
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.workflow import Definition
from flowmesh_shared.errors import FlowmeshError

__all__ = ["read_actions"]

#: Asks the registry for one of the tenant's actions.
GetAction = Callable[[ActionGet], Awaitable[Action]]


async def read_actions(definition: Definition, get: GetAction) -> dict[ActionKey, Action]:
    """Each action the definition names, by (name, pinned version), that exists now."""
    found: dict[ActionKey, Action] = {}
    keys = sorted({key for key, _ in action_refs(definition)}, key=lambda k: (k[0], k[1] or 0))
    for key in keys:
        name, version = key
        if is_reserved(name):  # no tenant's action may take such a name
            builtin = builtin_action(name)
            if builtin is not None and version in (None, builtin.version):
                found[key] = builtin
            continue
        try:
            found[key] = await get(ActionGet(name=name, version=version))
        except FlowmeshError as exc:
            if exc.code is not ErrorCode.NOT_FOUND:
                raise
    return found
