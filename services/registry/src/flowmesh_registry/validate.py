"""The definition validator (DESIGN section 4). Pure: data in, a report out; never raises.

Every problem is reported at once, each with a code and a path (``nodes[2].parameters.url``).
The parts live in :mod:`flowmesh_registry.validation`: shape, nodes, graph, triggers and
references (expressions and templates).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import msgspec

from flowmesh_proto.actions import Action, ActionKey
from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_proto.workflow import Definition
from flowmesh_registry.validation.actions import check_action_nodes
from flowmesh_registry.validation.graph import check_graph
from flowmesh_registry.validation.limits import Limits
from flowmesh_registry.validation.nodes import check_connectors, check_nodes, connector_refs
from flowmesh_registry.validation.problems import Problems
from flowmesh_registry.validation.references import ReferenceCheck
from flowmesh_registry.validation.shape import check_document, decode_shape
from flowmesh_registry.validation.triggers import check_triggers, cron_problem, timezone_problem

__all__ = [
    "Limits",
    "ValidationReport",
    "cron_problem",
    "timezone_problem",
    "validate_definition",
]

MAX_TAGS = 50
MAX_TAG_LENGTH = 64
MAX_NAME_LENGTH = 255


class ValidationReport(msgspec.Struct, frozen=True, kw_only=True):
    """The decoded definition (when its shape is right), every problem, and what it uses."""

    definition: Definition | None
    problems: list[ProblemItem]
    workflow_refs: list[str] = []
    secret_refs: list[str] = []
    #: The connectors the http and action nodes name, and the tenant's own actions.
    connector_refs: list[str] = []
    action_refs: list[str] = []

    @property
    def valid(self) -> bool:
        return not self.problems


DEFAULT_LIMITS = Limits()


def validate_definition(
    raw: Any,
    *,
    limits: Limits = DEFAULT_LIMITS,
    known_secrets: frozenset[str] | None = None,
    known_connectors: frozenset[str] | None = None,
    known_actions: Mapping[ActionKey, Action] | None = None,
) -> ValidationReport:
    """Check a decoded JSON or YAML document; ``known_secrets`` (``known_connectors``,
    ``known_actions``: the tenant's own actions the definition names) None skips the secret
    (connector, tenant action) lookup; built-in actions are always checked."""
    problems = Problems()
    document = check_document(
        raw, max_bytes=limits.max_bytes, max_depth=limits.max_depth, problems=problems
    )
    if document is None:
        return ValidationReport(definition=None, problems=problems.sorted())
    shape = decode_shape(document, problems)
    _check_labels(shape.fields, problems)
    _check_run_policies(shape.fields, problems)
    graph = check_graph(
        shape.nodes,
        shape.edges if shape.has_node_list else [],
        edge_count=shape.edge_count,
        max_edges=limits.max_edges,
        problems=problems,
    )
    workflow_refs = check_nodes(
        shape.nodes,
        ids=graph.ids,
        output=shape.fields.get("output"),
        max_nodes=limits.max_nodes,
        problems=problems,
    )
    if known_connectors is not None:
        check_connectors(shape.nodes, known_connectors, problems)
    action_refs = check_action_nodes(
        shape.nodes, known_actions, problems, limits.max_tenant_actions
    )
    check_triggers(shape.triggers, problems)
    references = ReferenceCheck(
        graph=graph,
        declared_vars=_declared_vars(document, shape.fields),
        known_secrets=known_secrets,
        max_length=limits.max_expression_length,
        problems=problems,
        limits=limits,
    )
    for entry in shape.nodes:
        references.node(entry)
    references.definition(shape.fields, shape.triggers)
    return ValidationReport(
        definition=shape.definition,
        problems=problems.sorted(),
        workflow_refs=workflow_refs,
        secret_refs=sorted(references.secret_refs),
        connector_refs=connector_refs(shape.nodes),
        action_refs=action_refs,
    )


def _declared_vars(document: dict[Any, Any], fields: dict[str, Any]) -> frozenset[str] | None:
    """The names in ``vars``; None when ``vars`` is there but did not decode (nothing to check)."""
    if "vars" not in document:
        return frozenset()
    return frozenset(fields["vars"]) if "vars" in fields else None


def _check_run_policies(fields: dict[str, Any], problems: Problems) -> None:
    """The whole run's timeout and concurrency limit."""
    timeout = fields.get("timeout")
    if timeout is not None and timeout <= timedelta(0):
        problems.add("timeout", ErrorCode.VALIDATION_FAILED, "must be a positive duration")
    concurrency = fields.get("concurrency")
    if concurrency is not None and concurrency.limit < 1:
        problems.add("concurrency.limit", ErrorCode.VALIDATION_FAILED, "must be at least 1")


def _check_labels(fields: dict[str, Any], problems: Problems) -> None:
    """The name and the tags."""
    failed = ErrorCode.VALIDATION_FAILED
    name = fields.get("name")
    if name is not None and not 1 <= len(name) <= MAX_NAME_LENGTH:
        problems.add("name", failed, f"a name has 1 to {MAX_NAME_LENGTH} characters")
    tags: list[str] = fields.get("tags", [])
    if len(tags) > MAX_TAGS:
        problems.add("tags", failed, f"{len(tags)} tags, at most {MAX_TAGS}")
    seen: set[str] = set()
    for index, tag in enumerate(tags):
        if not 1 <= len(tag) <= MAX_TAG_LENGTH:
            problems.add(f"tags[{index}]", failed, f"a tag has 1 to {MAX_TAG_LENGTH} characters")
        elif tag in seen:
            problems.add(f"tags[{index}]", failed, f"duplicate tag {tag!r}")
        seen.add(tag)
