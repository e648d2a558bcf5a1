"""A tenant action for tests (an internal helpdesk's ticket API) and a workflow using it."""

from __future__ import annotations

import copy
from typing import Any

HELPDESK: dict[str, Any] = {
    "description": "Opens a ticket in the internal helpdesk. Outputs the ticket's id.",
    "category": "integration",
    "input_schema": {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["title"],
        "additionalProperties": False,
    },
    "output_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
    "request": {
        "method": "POST",
        "path": "/tickets",
        "headers": {"Content-Type": "application/json"},
        "body": {
            "title": "{{ input.title }}",
            "priority": "{{ has(input.priority) ? input.priority : null }}",
        },
        "expect_status": [201],
    },
    "result": {"output": "{'id': string(response.body.id)}"},
    "connector": {"base_url": "https://helpdesk.internal.example/api", "auth": "bearer"},
    "example": {"title": "Printer on fire", "priority": 1},
}

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
