-- Run history filters that stay fast at millions of runs of one tenant (issue 16): every
-- listing is answered from one of two indexes whose leading columns are the filters a
-- listing has, each ending in the listing's order (created_at, id, newest first).
--
-- LIST_RUNS (flowmesh_registry.run_sql) reads, for each (status, trigger kind) pair the
-- filters allow (all of them when unfiltered: 7 statuses x 8 kinds, the kind '' standing
-- for a run whose trigger names none), the newest rows of that pair in order, at most a
-- page each, from runs_by_status, or from runs_by_workflow_status when a workflow is
-- named; then it keeps the newest page of those. So any combination of filters costs at
-- most 56 short index range scans, however many runs the tenant has, and a time range or
-- a cursor only narrows each scan. Before, a filter that matched few runs walked the
-- tenant's whole history (81 ms for 100 failed runs among 1,000,000).
--
-- Under row-level security only leakproof conditions reach an index: an expression such
-- as coalesce() or a row comparison does not, so the trigger kind becomes a column that is
-- never null ('' for a trigger with no kind: this rewrites the table once) and the cursor
-- is compared column by column (run_sql.LIST_RUNS).
--
-- A status change now updates these indexes (the run row's update is no longer HOT): the
-- projection writes a run about twice (queued, then ended), so the cost is bounded.
ALTER TABLE runs DROP COLUMN trigger_kind;
ALTER TABLE runs
    ADD COLUMN trigger_kind text NOT NULL GENERATED ALWAYS AS (coalesce(trigger ->> 'kind', ''))
    STORED;
CREATE INDEX runs_by_status
    ON runs (tenant_id, status, trigger_kind, created_at DESC, id DESC);
CREATE INDEX runs_by_workflow_status
    ON runs (tenant_id, workflow_id, status, trigger_kind, created_at DESC, id DESC);
-- Served by runs_by_workflow_status (every status and kind, merged).
DROP INDEX runs_by_workflow;
