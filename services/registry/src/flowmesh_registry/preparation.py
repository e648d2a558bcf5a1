"""A definition made ready to store: the pure validator, then what only the database knows.

The tenant's secrets and connectors are read ``FOR KEY SHARE`` (``known_names``,
``known_connectors``), so none that a new version names can be deleted before that
version commits (a delete waits, then invalidates that version too:
:mod:`flowmesh_registry.dependents`). The sub-workflows it calls must be live workflows
of the tenant, and the tenant actions its action nodes name must exist, their inputs
matching their schemas.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import asyncpg

from flowmesh_proto.actions import Action, ActionKey
from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_proto.ids import parse_uuid
from flowmesh_proto.workflow import Definition, StepTemplate, definition_to_builtins
from flowmesh_registry import secrets
from flowmesh_registry import workflow_sql as sql
from flowmesh_registry.actions import known_actions
from flowmesh_registry.connectors import known_connectors
from flowmesh_registry.documents import content_hash
from flowmesh_registry.validate import Limits, ValidationReport, validate_definition
from flowmesh_registry.validation.actions import action_keys
from flowmesh_shared.errors import FlowmeshError


def invalid(problems: list[ProblemItem], detail: str) -> FlowmeshError:
    """A 422 listing every problem; its code is the first problem's, by path."""
    ordered = sorted(problems, key=lambda p: p.path)
    code = ErrorCode.__members__.get(ordered[0].code, ErrorCode.VALIDATION_FAILED)
    return FlowmeshError(code, detail, errors=ordered)


class Prepared:
    """A definition that passed validation, ready to store."""

    def __init__(self, report: ValidationReport) -> None:
        assert report.definition is not None
        self.definition: Definition = report.definition
        self.data: dict[str, Any] = definition_to_builtins(report.definition)
        self.hash = content_hash(self.data)
        self.workflow_refs = [uuid.UUID(ref) for ref in report.workflow_refs]
        self.secret_refs = list(report.secret_refs)
        self.connector_refs = list(report.connector_refs)
        self.action_refs = list(report.action_refs)


async def prepare(conn: asyncpg.Connection, tenant: str, raw: Any, limits: Limits) -> Prepared:
    """Validate ``raw`` fully (shape, graph, expressions, secrets, sub-workflows, actions) or
    raise 422. The check runs in a worker thread, as validation does: a large definition, or
    the schemas of the tenant actions it names, must not hold the registry's loop."""
    known = await secrets.known_names(conn, tenant, hold=True)
    connectors = await known_connectors(conn, tenant, hold=True)
    actions = await named_actions(conn, tenant, raw, limits)
    check = functools.partial(
        validate_definition,
        raw,
        limits=limits,
        known_secrets=known,
        known_connectors=connectors,
        known_actions=actions,
    )
    report = await asyncio.to_thread(check)  # a large definition (or its actions' schemas)
    problems = list(report.problems)
    if report.definition is not None:
        problems += await missing_subworkflows(conn, tenant, report.definition)
    if problems:
        raise invalid(problems, f"the definition has {len(problems)} problem(s)")
    return Prepared(report)


async def named_actions(
    conn: asyncpg.Connection, tenant: str, raw: Any, limits: Limits
) -> Mapping[ActionKey, Action]:
    """The first ``limits.max_tenant_actions`` tenant actions ``raw``'s action nodes name,
    in one query (the validator refuses the nodes naming more)."""
    return await known_actions(conn, tenant, action_keys(raw)[: limits.max_tenant_actions])


async def missing_subworkflows(
    conn: asyncpg.Connection, tenant: str, definition: Definition
) -> list[ProblemItem]:
    """A MISSING_VARIABLE for each sub-workflow id that names no live workflow of the tenant."""
    wanted: dict[str, str] = {}
    for ref, path in _subworkflow_refs(definition):
        if parse_uuid(ref) is not None:
            wanted.setdefault(ref, path)
    if not wanted:
        return []
    ids = [uuid.UUID(ref) for ref in wanted]
    live = {str(row["id"]) for row in await conn.fetch(sql.LIVE_WORKFLOW_IDS, tenant, ids)}
    return [
        ProblemItem(
            path=path,
            code=ErrorCode.MISSING_VARIABLE.name,
            message=f"sub-workflow {ref} does not exist",
        )
        for ref, path in wanted.items()
        if str(uuid.UUID(ref)) not in live
    ]


def _subworkflow_refs(definition: Definition) -> Iterator[tuple[str, str]]:
    """Each literal sub-workflow id with its path: a ``workflow`` node's, a ``map``'s own,
    and the one in a ``map``'s per-item ``workflow`` node template."""
    for i, node in enumerate(definition.nodes):
        path = f"nodes[{i}].parameters"
        ref = getattr(node.parameters, "workflow_id", None)
        if isinstance(ref, str):
            yield ref, f"{path}.workflow_id"
        template = getattr(node.parameters, "node", None)
        if isinstance(template, StepTemplate) and template.type == "workflow":
            ref = template.parameters.get("workflow_id")
            if isinstance(ref, str):
                yield ref, f"{path}.node.parameters.workflow_id"
