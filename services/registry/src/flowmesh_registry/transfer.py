"""Workflow documents as text (JSON or YAML): export, import, and validate or update from a
document, whose problems carry the line and column where they are written
(:mod:`flowmesh_registry.locations`).

Reading a document and placing its problems are CPU work (about 0.15 s for 256 KiB of
YAML, 0.5 s to place problems in as much JSON): done in a worker thread, so the
registry's loop keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_proto.registry import ExportedDocument, ValidationResult, Workflow
from flowmesh_registry.caller import Caller
from flowmesh_registry.documents import (
    CONTENT_TYPES,
    DocumentError,
    read_document,
    render_document,
)
from flowmesh_registry.locations import DOCUMENT, DocumentMap, syntax_problem
from flowmesh_registry.resources import check_tenant, document_of
from flowmesh_registry.workflows import WorkflowOperations
from flowmesh_shared.errors import FlowmeshError


async def export_workflow(
    ops: WorkflowOperations, tenant: str, workflow_id: str, version: int | None, fmt: str
) -> ExportedDocument:
    row = await ops.row(tenant, workflow_id, version)
    check_tenant(row, tenant)
    return ExportedDocument(
        format=fmt,  # type: ignore[arg-type]
        content_type=CONTENT_TYPES[fmt],
        document=render_document(document_of(row), fmt),
    )


def _too_large(ops: WorkflowOperations, document: str) -> str | None:
    """Why ``document`` is over the definition limit, if it is (measured as sent)."""
    limit = ops.limits.max_bytes
    size = len(document.encode())
    return f"the document is {size} bytes, more than {limit} allowed" if size > limit else None


def read_located(ops: WorkflowOperations, document: str, fmt: str) -> tuple[Any, DocumentMap]:
    """The document's data and the map of where its values are written; 413 over the
    definition limit, 400 INVALID_EXPORT_FORMAT (one problem at ``$``, at the line and
    column where the text went wrong) when it is not well-formed."""
    too_large = _too_large(ops, document)
    if too_large is not None:
        raise FlowmeshError(ErrorCode.PAYLOAD_TOO_LARGE, too_large)
    try:
        raw, root = read_document(document, fmt)
    except DocumentError as exc:
        code = ErrorCode.INVALID_EXPORT_FORMAT
        raise FlowmeshError(code, str(exc), errors=[syntax_problem(exc, code.name)]) from exc
    return raw, DocumentMap(root) if fmt == "yaml" else DocumentMap(json_text=document)


async def import_workflow(
    ops: WorkflowOperations, caller: Caller, document: str, fmt: str
) -> Workflow:
    """Create a workflow from a document; INVALID_EXPORT_FORMAT or IMPORT_VALIDATION_FAILED."""
    raw, where = await asyncio.to_thread(read_located, ops, document, fmt)
    try:
        return await ops.create(caller, raw, action="workflow.import")
    except FlowmeshError as exc:
        if exc.code.http_status != 422:
            raise
        raise FlowmeshError(
            ErrorCode.IMPORT_VALIDATION_FAILED,
            f"the imported document has {len(exc.errors)} problem(s)",
            errors=await asyncio.to_thread(where.locate, exc.errors),
        ) from exc


async def update_from_document(
    ops: WorkflowOperations,
    caller: Caller,
    workflow_id: str,
    document: str,
    fmt: str,
    if_version: int | None,
) -> Workflow:
    """A new version from a document: as :meth:`WorkflowOperations.update`, with each
    problem of a 422 at its line and column."""
    raw, where = await asyncio.to_thread(read_located, ops, document, fmt)
    try:
        return await ops.update(caller, workflow_id, raw, if_version)
    except FlowmeshError as exc:
        if exc.code.http_status != 422 or not exc.errors:
            raise
        located = await asyncio.to_thread(where.locate, exc.errors)
        raise FlowmeshError(exc.code, exc.detail, errors=located) from exc


async def validate_document(
    ops: WorkflowOperations, tenant: str, document: str, fmt: str
) -> ValidationResult:
    """Validate a document without storing it: a question, so text that is too large or not
    well-formed is the answer's one problem (at ``$``), not a failed request."""
    too_large = _too_large(ops, document)
    if too_large is not None:
        code = ErrorCode.PAYLOAD_TOO_LARGE.name
        item = ProblemItem(path=DOCUMENT, code=code, message=too_large, line=1, column=1)
        return ValidationResult(valid=False, errors=[item])
    try:
        raw, where = await asyncio.to_thread(read_located, ops, document, fmt)
    except FlowmeshError as exc:
        return ValidationResult(valid=False, errors=exc.errors)
    report = await ops.validate(tenant, raw)
    located = await asyncio.to_thread(where.locate, list(report.problems))
    return ValidationResult(valid=report.valid, errors=located)
