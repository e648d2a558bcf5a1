"""SQL for run history: each statement written once, tenant first ($1), set-based.

The projection writes a batch with one statement per tenant (``UPSERT_RUNS``: the runs
and their changed steps, from arrays) and one more when runs ended (``COUNT_ENDED``). A
write never moves a row backwards: ``last_seq`` only grows.
"""

from __future__ import annotations

#: The columns of a run (what :func:`.run_rows.run_of` reads), and where they come from.
RUN_ROW = """
    r.tenant_id, r.id, r.workflow_id, r.version, r.status, r.trigger, r.input, r.output,
    r.error, r.attempt, r.parent_run_id, r.created_at, r.started_at, r.finished_at,
    r.duration_ms, r.metrics, r.last_seq, r.counted
    FROM runs r"""

STEP_ROW = """
    s.tenant_id, s.run_id, s.node_id, s.position, s.status, s.attempts, s.started_at,
    s.finished_at, s.duration_ms, s.output, s.error, s.reused
    FROM step_runs s"""

# --- the projection ------------------------------------------------------------------

#: The stored runs of a batch, locked until the batch commits (in id order: two registry
#: replicas lock shared runs in the same order). The projection keeps the views it wrote;
#: one whose ``last_seq`` still matches needs no more than this.
LOCK_RUNS = """
SELECT id, last_seq, counted FROM runs
WHERE tenant_id = $1 AND id = ANY($2::uuid[])
ORDER BY id
FOR UPDATE"""

#: The stored runs the projection does not hold as they are (another replica wrote them,
#: or it started since).
RUNS_BY_ID = f"SELECT {RUN_ROW} WHERE r.tenant_id = $1 AND r.id = ANY($2::uuid[])"

STEPS_OF_RUNS = f"""
SELECT {STEP_ROW}
WHERE s.tenant_id = $1 AND s.run_id = ANY($2::uuid[])
ORDER BY s.run_id, s.position"""

TENANT_RETENTION = """
SELECT (settings ->> 'run_retention_days')::integer FROM tenants WHERE tenant_id = $1"""

UPSERT_RUNS = """
WITH written_runs AS (
    INSERT INTO runs (tenant_id, id, workflow_id, version, status, trigger, input, output,
                      error, attempt, parent_run_id, created_at, started_at, finished_at,
                      duration_ms, metrics, last_seq)
    SELECT $1, u.id, u.workflow_id, u.version, u.status, coalesce(u.trigger::jsonb, '{}'),
           u.input::jsonb, u.output::jsonb, u.error::jsonb, u.attempt, u.parent_run_id,
           u.created_at, u.started_at, u.finished_at, u.duration_ms, u.metrics::jsonb,
           u.last_seq
    FROM unnest($2::uuid[], $3::uuid[], $4::integer[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::text[], $10::integer[], $11::uuid[], $12::timestamptz[],
                $13::timestamptz[], $14::timestamptz[], $15::float8[], $16::text[],
                $17::bigint[])
         AS u(id, workflow_id, version, status, trigger, input, output, error, attempt,
              parent_run_id, created_at, started_at, finished_at, duration_ms, metrics,
              last_seq)
    ON CONFLICT (tenant_id, id) DO UPDATE
    SET workflow_id = EXCLUDED.workflow_id, version = EXCLUDED.version,
        status = EXCLUDED.status, trigger = EXCLUDED.trigger, input = EXCLUDED.input,
        output = EXCLUDED.output, error = EXCLUDED.error, attempt = EXCLUDED.attempt,
        parent_run_id = EXCLUDED.parent_run_id, created_at = EXCLUDED.created_at,
        started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
        duration_ms = EXCLUDED.duration_ms, metrics = EXCLUDED.metrics,
        last_seq = EXCLUDED.last_seq
    WHERE runs.last_seq < EXCLUDED.last_seq
    RETURNING 1
), written_steps AS (
    INSERT INTO step_runs (tenant_id, run_id, node_id, position, status, attempts,
                           started_at, finished_at, duration_ms, output, error, reused,
                           last_seq)
    SELECT $1, u.run_id, u.node_id, u.position, u.status, u.attempts, u.started_at,
           u.finished_at, u.duration_ms, u.output::jsonb, u.error::jsonb, u.reused,
           u.last_seq
    FROM unnest($18::uuid[], $19::text[], $20::integer[], $21::text[], $22::integer[],
                $23::timestamptz[], $24::timestamptz[], $25::float8[], $26::text[],
                $27::text[], $28::boolean[], $29::bigint[])
         AS u(run_id, node_id, position, status, attempts, started_at, finished_at,
              duration_ms, output, error, reused, last_seq)
    ON CONFLICT (tenant_id, run_id, node_id) DO UPDATE
    SET position = EXCLUDED.position, status = EXCLUDED.status,
        attempts = EXCLUDED.attempts, started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms,
        output = EXCLUDED.output, error = EXCLUDED.error, reused = EXCLUDED.reused,
        last_seq = EXCLUDED.last_seq
    WHERE step_runs.last_seq < EXCLUDED.last_seq
    RETURNING 1
)
SELECT (SELECT count(*) FROM written_runs) AS runs, (SELECT count(*) FROM written_steps) AS steps"""

#: Ended runs not yet counted are counted, once: ``counted`` flips under the row lock, so
#: a replayed terminal event (or a second replica) finds nothing left to count. A run's
#: time is its start (its creation if it never started); the workflow's last run is the
#: latest of them, whatever order runs end in.
COUNT_ENDED = """
WITH ended AS (
    UPDATE runs SET counted = true
    WHERE tenant_id = $1 AND id = ANY($2::uuid[]) AND NOT counted
      AND status IN ('succeeded', 'failed', 'cancelled', 'timed_out')
    RETURNING workflow_id, status, duration_ms, coalesce(started_at, created_at) AS at
), per_workflow AS (
    SELECT workflow_id,
           count(*) AS runs,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status IN ('failed', 'timed_out')) AS failed,
           count(duration_ms) AS timed,
           coalesce(sum(duration_ms), 0) AS total_ms,
           max(at) AS last_at,
           (array_agg(status ORDER BY at DESC))[1] AS last_status
    FROM ended GROUP BY workflow_id
)
UPDATE workflows w
SET execution_count = w.execution_count + p.runs,
    success_count = w.success_count + p.succeeded,
    failure_count = w.failure_count + p.failed,
    timed_count = w.timed_count + p.timed,
    total_duration_ms = w.total_duration_ms + p.total_ms,
    last_execution_status = CASE
        WHEN w.last_executed_at IS NULL OR p.last_at >= w.last_executed_at THEN p.last_status
        ELSE w.last_execution_status END,
    last_executed_at = greatest(w.last_executed_at, p.last_at)
FROM per_workflow p
WHERE w.tenant_id = $1 AND w.id = p.workflow_id"""

# --- reading -------------------------------------------------------------------------

GET_RUN = f"SELECT {RUN_ROW} WHERE r.tenant_id = $1 AND r.id = $2"

STEPS_OF_RUN = f"""
SELECT {STEP_ROW}
WHERE s.tenant_id = $1 AND s.run_id = $2 ORDER BY s.position"""

#: Newest first. For each (status, trigger kind) pair of ``$3`` x ``$4`` (the caller
#: passes every status and kind when a filter is absent; ``''``: a trigger with no kind),
#: the newest ids of that pair, at most a page, from an index range scan (``runs_by_status``,
#: or ``runs_by_workflow_status`` with a workflow); then the newest page of all those, and
#: its rows (migration 0006). Every condition an index range needs is leakproof (row-level
#: security keeps others out of index scans): the cursor ``($7, $8)`` is compared column by
#: column. Absent filters fold away under custom plans (``FORCE_CUSTOM_PLANS``).
LIST_RUNS = f"""
SELECT {RUN_ROW}
JOIN (
    SELECT p.id, p.created_at
    FROM unnest($3::text[]) AS wanted_status (status)
    CROSS JOIN unnest($4::text[]) AS wanted_kind (kind)
    CROSS JOIN LATERAL (
        SELECT x.id, x.created_at FROM runs x
        WHERE x.tenant_id = $1
          AND x.status = wanted_status.status
          AND x.trigger_kind = wanted_kind.kind
          AND ($2::uuid IS NULL OR x.workflow_id = $2)
          AND ($5::timestamptz IS NULL OR x.created_at >= $5)
          AND ($6::timestamptz IS NULL OR x.created_at < $6)
          AND ($7::timestamptz IS NULL OR x.created_at <= $7)
          AND ($7::timestamptz IS NULL OR x.created_at < $7 OR x.id < $8::uuid)
        ORDER BY x.created_at DESC, x.id DESC
        LIMIT $9
    ) p
    ORDER BY p.created_at DESC, p.id DESC
    LIMIT $9
) page ON r.tenant_id = $1 AND r.id = page.id
ORDER BY r.created_at DESC, r.id DESC"""  # noqa: S608 - this module's constants only

#: The statistics and the p95 of the durations (nearest rank: the smallest duration at
#: or above which 5% of the runs lie), read from the top of the ``runs_durations`` index.
WORKFLOW_STATS = """
SELECT w.tenant_id, w.execution_count, w.success_count, w.failure_count, w.timed_count,
       w.total_duration_ms, w.last_executed_at, w.last_execution_status, p95.duration_ms AS p95
FROM workflows w
LEFT JOIN LATERAL (
    SELECT r.duration_ms FROM runs r
    WHERE r.tenant_id = $1 AND r.workflow_id = $2 AND r.counted AND r.duration_ms IS NOT NULL
    ORDER BY r.duration_ms DESC
    OFFSET w.timed_count - ceil(0.95 * w.timed_count)::bigint
    LIMIT 1
) p95 ON true
WHERE w.tenant_id = $1 AND w.id = $2 AND w.deleted_at IS NULL"""

# --- retention -------------------------------------------------------------------------

RETENTION_BY_TENANT = "SELECT tenant_id, days FROM fm_run_retention($1)"

#: One bounded batch: the oldest runs created before $2 (at most $3), their steps, and
#: their share of the workflows' statistics, so that counts, average and p95 keep
#: describing the same runs: the ones the registry keeps.
DELETE_EXPIRED = """
WITH doomed AS (
    SELECT id FROM runs
    WHERE tenant_id = $1 AND created_at < $2
    ORDER BY created_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), gone_steps AS (
    DELETE FROM step_runs s USING doomed d
    WHERE s.tenant_id = $1 AND s.run_id = d.id
    RETURNING 1
), gone AS (
    DELETE FROM runs r USING doomed d
    WHERE r.tenant_id = $1 AND r.id = d.id
    RETURNING r.workflow_id, r.status, r.duration_ms, r.counted
), per_workflow AS (
    SELECT workflow_id,
           count(*) AS runs,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status IN ('failed', 'timed_out')) AS failed,
           count(duration_ms) AS timed,
           coalesce(sum(duration_ms), 0) AS total_ms
    FROM gone WHERE counted GROUP BY workflow_id
), uncounted AS (
    UPDATE workflows w
    SET execution_count = w.execution_count - p.runs,
        success_count = w.success_count - p.succeeded,
        failure_count = w.failure_count - p.failed,
        timed_count = w.timed_count - p.timed,
        total_duration_ms = CASE WHEN w.timed_count = p.timed THEN 0
                                 ELSE w.total_duration_ms - p.total_ms END
    FROM per_workflow p
    WHERE w.tenant_id = $1 AND w.id = p.workflow_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS runs, (SELECT count(*) FROM gone_steps) AS steps"""

FORCE_CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"
