"""A tenant action for tests (an internal helpdesk's ticket API) and a workflow using it."""

from __future__ import annotations

import copy
from typing import Any

from flowmesh_gateway.routes.actions import EXAMPLE

#: The OpenAPI example of ``PUT /actions/{name}`` (so the example is put by the tests).
HELPDESK: dict[str, Any] = EXAMPLE

CONNECTOR: dict[str, Any] = {
    "base_url": "https://helpdesk.internal.example/api",
    "auth": {"kind": "bearer", "secret": "HELPDESK_TOKEN"},
}


def helpdesk(**changes: Any) -> dict[str, Any]:
    """The helpdesk spec with top-level ``changes``."""
    return {**copy.deepcopy(HELPDESK), **changes}


def request_with(**changes: Any) -> dict[str, Any]:
    """The helpdesk spec whose request has ``changes``."""
    return helpdesk(request={**HELPDESK["request"], **changes})


def workflow_using(
    action: str, given: dict[str, Any], *, version: int | None = None, name: str = "tickets"
) -> dict[str, Any]:
    """A workflow of one action node through the ``helpdesk`` connector."""
    parameters: dict[str, Any] = {"action": action, "connector": "helpdesk", "input": given}
    if version is not None:
        parameters["version"] = version
    return {
        "name": name,
        "nodes": [{"id": "open", "type": "action", "parameters": parameters}],
        "edges": [],
    }
