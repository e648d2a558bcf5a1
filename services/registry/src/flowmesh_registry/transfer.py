"""Export and import of portable workflow documents (JSON or YAML)."""

from __future__ import annotations

from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.registry import ExportedDocument, Workflow
from flowmesh_registry.caller import Caller
from flowmesh_registry.documents import (
    CONTENT_TYPES,
    DocumentError,
    parse_document,
    render_document,
)
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


async def import_workflow(
    ops: WorkflowOperations, caller: Caller, document: str, fmt: str
) -> Workflow:
    """Create a workflow from a document; INVALID_EXPORT_FORMAT or IMPORT_VALIDATION_FAILED."""
    if len(document.encode()) > ops.limits.max_bytes:
        raise FlowmeshError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"the document is larger than {ops.limits.max_bytes} bytes",
        )
    try:
        raw = parse_document(document, fmt)
    except DocumentError as exc:
        raise FlowmeshError(ErrorCode.INVALID_EXPORT_FORMAT, str(exc)) from exc
    try:
        return await ops.create(caller, raw, action="workflow.import")
    except FlowmeshError as exc:
        if exc.code.http_status != 422:
            raise
        raise FlowmeshError(
            ErrorCode.IMPORT_VALIDATION_FAILED,
            f"the imported document has {len(exc.errors)} problem(s)",
            errors=exc.errors,
        ) from exc
