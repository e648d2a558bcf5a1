-- Run history: what the projection of run events (flowmesh_registry.projection) needs
-- beyond the runs and step_runs tables of 0001.
--
-- A run row is the run resource folded from the run's events up to stream sequence
-- last_seq; an event at or below last_seq changes nothing (redeliveries, replays).
-- counted: the run's end has been added to its workflow's statistics (once, ever).
ALTER TABLE runs
    ADD COLUMN duration_ms  double precision,
    ADD COLUMN trigger_kind text GENERATED ALWAYS AS (trigger ->> 'kind') STORED,
    ADD COLUMN counted      boolean NOT NULL DEFAULT false;

-- position: the step's place in the run (first seen first), as the run resource lists them.
ALTER TABLE step_runs
    ADD COLUMN position    integer NOT NULL DEFAULT 0,
    ADD COLUMN duration_ms double precision,
    ADD COLUMN reused      boolean NOT NULL DEFAULT false;

-- Statistics: execution_count (ended runs), success_count, failure_count, last_executed_at
-- and last_execution_status exist since 0001. timed_count counts the ended runs that have a
-- duration (a run cancelled before it started has none): the average is
-- total_duration_ms / timed_count, and the p95 reads the runs_durations index below.
ALTER TABLE workflows ADD COLUMN timed_count bigint NOT NULL DEFAULT 0;

-- A run's row is rewritten by every batch that carries its events: free space in each
-- page lets PostgreSQL update it in place (a HOT update: no new index entries) as long as
-- no indexed column changes, which holds until the run ends.
ALTER TABLE runs SET (fillfactor = 70);
ALTER TABLE step_runs SET (fillfactor = 70);

-- Listings run newest first with the id as tie-breaker (keyset pagination).
DROP INDEX runs_by_workflow;
DROP INDEX runs_by_time;
CREATE INDEX runs_by_time ON runs (tenant_id, created_at DESC, id DESC);
CREATE INDEX runs_by_workflow ON runs (tenant_id, workflow_id, created_at DESC, id DESC);
-- The p95 of a workflow's durations: the counted runs with a duration, in order; the
-- statistics query reads the top 5% of this index backwards (an index-only scan).
CREATE INDEX runs_durations ON runs (tenant_id, workflow_id, duration_ms)
    WHERE counted AND duration_ms IS NOT NULL;

-- Retention: the sweep asks every tenant's setting (tenants.settings->'run_retention_days',
-- else the registry's default) through this function, which runs as the schema owner; a
-- policy lets only that owner read every tenant row. The deletes themselves run as the
-- runtime role, one tenant at a time, under row-level security.
DO $$
BEGIN
    EXECUTE format('CREATE POLICY retention_sweep ON tenants FOR SELECT TO %I USING (true)',
                   current_user);
END $$;

CREATE FUNCTION fm_run_retention(default_days integer)
    RETURNS TABLE (tenant_id text, days integer)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT t.tenant_id,
                 coalesce((t.settings ->> 'run_retention_days')::integer, default_days)
          FROM tenants t ORDER BY t.tenant_id $$;
