"""SQL for workflows and their versions: each statement written once, tenant first ($1)."""

from __future__ import annotations

WORKFLOW_COLUMNS = """
    w.id, w.tenant_id, w.name, w.description, w.category, w.tags, w.enabled,
    w.current_version, w.latest_version, w.locked_by, w.locked_at, w.lock_expires_at,
    w.execution_count, w.success_count, w.failure_count, w.total_duration_ms, w.timed_count,
    w.last_executed_at, w.last_execution_status, w.created_at, w.created_by,
    w.updated_at, w.updated_by,
    v.version, v.definition, v.content_hash, v.validation_status, v.validation_errors,
    v.created_at AS version_created_at, v.created_by AS version_created_by"""

JOIN_VERSION = """
    FROM workflows w
    JOIN workflow_versions v
      ON v.tenant_id = w.tenant_id AND v.workflow_id = w.id"""

GET_WORKFLOW = f"""
SELECT {WORKFLOW_COLUMNS} {JOIN_VERSION} AND v.version = coalesce($3::integer, w.current_version)
WHERE w.tenant_id = $1 AND w.id = $2 AND w.deleted_at IS NULL"""

LOCK_WORKFLOW_ROW = """
SELECT id, name, current_version, latest_version, enabled, tags, locked_by, lock_expires_at,
       lock_expires_at > now() AS lock_live
FROM workflows WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE"""

FIND_LIVE_BY_NAME = """
SELECT id FROM workflows WHERE tenant_id = $1 AND name = $2 AND deleted_at IS NULL"""

INSERT_WORKFLOW = """
INSERT INTO workflows (tenant_id, id, name, description, category, tags, enabled,
                       current_version, latest_version, created_by, updated_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 1, $8, $8)"""

INSERT_VERSION = """
INSERT INTO workflow_versions (tenant_id, workflow_id, version, definition, content_hash,
                               validation_status, validation_errors, workflow_refs,
                               secret_refs, connector_refs, action_refs, created_by)
VALUES ($1, $2, $3, $4, $5, 'valid', '[]'::jsonb, $6, $7, $8, $9, $10)"""

SET_NEW_VERSION = """
UPDATE workflows
SET current_version = $3, latest_version = $3, name = $4, description = $5, category = $6,
    tags = $7, enabled = $8, updated_at = now(), updated_by = $9
WHERE tenant_id = $1 AND id = $2"""

PATCH_METADATA = """
UPDATE workflows
SET enabled = coalesce($3, enabled), tags = coalesce($4, tags), updated_at = now(),
    updated_by = $5
WHERE tenant_id = $1 AND id = $2"""

GET_VERSION_CONTENT = """
SELECT definition, content_hash FROM workflow_versions
WHERE tenant_id = $1 AND workflow_id = $2 AND version = $3"""

SOFT_DELETE = """
UPDATE workflows
SET deleted_at = now(), updated_at = now(), updated_by = $3,
    locked_by = NULL, locked_at = NULL, lock_expires_at = NULL
WHERE tenant_id = $1 AND id = $2"""

# A stored version that calls a deleted workflow can no longer run.
INVALIDATE_DEPENDENTS = """
UPDATE workflow_versions
SET validation_status = 'invalid',
    validation_errors = validation_errors || jsonb_build_array(jsonb_build_object(
        'path', 'nodes', 'code', 'MISSING_VARIABLE',
        'message', 'sub-workflow ' || $2::text || ' was deleted'))
WHERE tenant_id = $1 AND $2 = ANY(workflow_refs)
RETURNING workflow_id, version"""

LIVE_WORKFLOW_IDS = """
SELECT id FROM workflows WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND deleted_at IS NULL"""

# Newest first, a page at a time: $3 is the last version of the previous page (or NULL).
LIST_VERSIONS = """
SELECT tenant_id, version, created_at, created_by, validation_status, content_hash
FROM workflow_versions
WHERE tenant_id = $1 AND workflow_id = $2 AND ($3::integer IS NULL OR version < $3)
ORDER BY version DESC
LIMIT $4"""

WORKFLOW_EXISTS = """
SELECT 1 FROM workflows WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"""

SET_LOCK = """
UPDATE workflows
SET locked_by = $3, locked_at = now(), lock_expires_at = now() + make_interval(secs => $4)
WHERE tenant_id = $1 AND id = $2
RETURNING locked_by, locked_at, lock_expires_at"""

CLEAR_LOCK = """
UPDATE workflows SET locked_by = NULL, locked_at = NULL, lock_expires_at = NULL
WHERE tenant_id = $1 AND id = $2"""

# Listing: one statement per sort order, all built here from a fixed whitelist.
# Text and tag filters go through fm_matching_workflows (migration 0002): under RLS only
# that function can use the trigram and GIN indexes. Listing runs with custom plans
# (FORCE_CUSTOM_PLANS) so the filters that are absent fold away.
_LIST_FILTERS = """
WHERE w.tenant_id = $1 AND w.deleted_at IS NULL
  AND ($2::text IS NULL OR w.category = $2)
  AND ($4::boolean IS NULL OR w.enabled = $4)
  AND (($5::text IS NULL AND cardinality($3::text[]) = 0)
       OR w.id IN (SELECT fm_matching_workflows($5::text, $6::text, $3::text[])))"""

FORCE_CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"

_SORTS = {
    "name": ("w.name", "text"),
    "created_at": ("w.created_at", "timestamptz"),
    "updated_at": ("w.updated_at", "timestamptz"),
}


def _list_statement(column: str, cast: str, descending: bool) -> str:
    op, direction = ("<", "DESC") if descending else (">", "ASC")
    return f"""
SELECT {WORKFLOW_COLUMNS} {JOIN_VERSION} AND v.version = w.current_version
{_LIST_FILTERS}
  AND ($7::{cast} IS NULL OR ({column}, w.id) {op} ($7::{cast}, $8::uuid))
ORDER BY {column} {direction}, w.id {direction}
LIMIT $9 OFFSET $10"""


LIST_WORKFLOWS: dict[str, str] = {}
for _name, (_column, _cast) in _SORTS.items():
    LIST_WORKFLOWS[_name] = _list_statement(_column, _cast, descending=False)
    LIST_WORKFLOWS[f"-{_name}"] = _list_statement(_column, _cast, descending=True)
