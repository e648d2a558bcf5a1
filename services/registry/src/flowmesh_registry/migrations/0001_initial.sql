-- Flowmesh registry schema, version 1.
-- Every tenant table has tenant_id, row-level security FORCEd, and one policy keyed by
-- the transaction's app.tenant_id (set with set_config(..., true)). A connection with no
-- tenant set sees nothing: nullif(...) turns the missing setting into NULL, and NULL = x
-- is never true.

CREATE FUNCTION fm_current_tenant() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.tenant_id', true), '') $$;

CREATE TABLE tenants (
    tenant_id   text PRIMARY KEY CHECK (tenant_id ~ '^[a-z0-9][a-z0-9-]{1,62}$'
                                        AND tenant_id NOT IN ('rpc', 'sys', 'admin')),
    name        text NOT NULL,
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    id           uuid NOT NULL,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'editor', 'admin')),
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE workflows (
    tenant_id             text NOT NULL REFERENCES tenants (tenant_id),
    id                    uuid NOT NULL,
    name                  text NOT NULL,
    description           text NOT NULL DEFAULT '',
    category              text NOT NULL DEFAULT 'other',
    tags                  text[] NOT NULL DEFAULT '{}',
    enabled               boolean NOT NULL DEFAULT true,
    current_version       integer NOT NULL,
    latest_version        integer NOT NULL,
    search                tsvector GENERATED ALWAYS AS (
                              to_tsvector('simple', name || ' ' || description)) STORED,
    locked_by             text,
    locked_at             timestamptz,
    lock_expires_at       timestamptz,
    execution_count       bigint NOT NULL DEFAULT 0,
    success_count         bigint NOT NULL DEFAULT 0,
    failure_count         bigint NOT NULL DEFAULT 0,
    total_duration_ms     double precision NOT NULL DEFAULT 0,
    last_executed_at      timestamptz,
    last_execution_status text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    created_by            text NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    updated_by            text NOT NULL,
    deleted_at            timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- Names are unique per tenant among live workflows.
CREATE UNIQUE INDEX workflows_live_name ON workflows (tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX workflows_updated ON workflows (tenant_id, updated_at, id) WHERE deleted_at IS NULL;
CREATE INDEX workflows_created ON workflows (tenant_id, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX workflows_tags ON workflows USING gin (tags);
CREATE INDEX workflows_search ON workflows USING gin (search);

CREATE TABLE workflow_versions (
    tenant_id         text NOT NULL,
    workflow_id       uuid NOT NULL,
    version           integer NOT NULL CHECK (version >= 1),
    definition        jsonb NOT NULL,
    content_hash      text NOT NULL,
    validation_status text NOT NULL CHECK (validation_status IN ('valid', 'invalid')),
    validation_errors jsonb NOT NULL DEFAULT '[]'::jsonb,
    workflow_refs     uuid[] NOT NULL DEFAULT '{}',
    secret_refs       text[] NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    created_by        text NOT NULL,
    PRIMARY KEY (tenant_id, workflow_id, version),
    FOREIGN KEY (tenant_id, workflow_id) REFERENCES workflows (tenant_id, id)
);
CREATE INDEX workflow_versions_refs ON workflow_versions USING gin (workflow_refs);
CREATE INDEX workflow_versions_secrets ON workflow_versions USING gin (secret_refs);

-- Runs and step runs: a projection of run events, keyed by stream sequence.
CREATE TABLE runs (
    tenant_id     text NOT NULL,
    id            uuid NOT NULL,
    workflow_id   uuid NOT NULL,
    version       integer NOT NULL,
    status        text NOT NULL,
    trigger       jsonb NOT NULL DEFAULT '{}'::jsonb,
    input         jsonb,
    output        jsonb,
    error         jsonb,
    attempt       integer NOT NULL DEFAULT 1,
    parent_run_id uuid,
    created_at    timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz,
    metrics       jsonb NOT NULL DEFAULT '{}'::jsonb,
    last_seq      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX runs_by_workflow ON runs (tenant_id, workflow_id, created_at DESC);
CREATE INDEX runs_by_time ON runs (tenant_id, created_at DESC);

CREATE TABLE step_runs (
    tenant_id   text NOT NULL,
    run_id      uuid NOT NULL,
    node_id     text NOT NULL,
    status      text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    started_at  timestamptz,
    finished_at timestamptz,
    output      jsonb,
    error       jsonb,
    last_seq    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, run_id, node_id)
);

CREATE TABLE secrets (
    tenant_id  text NOT NULL REFERENCES tenants (tenant_id),
    name       text NOT NULL CHECK (name ~ '^[A-Z][A-Z0-9_]{0,63}$'),
    ciphertext bytea NOT NULL,
    nonce      bytea NOT NULL,
    key_id     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE audit_log (
    tenant_id  text NOT NULL,
    id         bigint GENERATED ALWAYS AS IDENTITY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    action     text NOT NULL,
    target     text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('success', 'denied', 'failure')),
    request_id text NOT NULL DEFAULT '',
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_log_recent ON audit_log (tenant_id, id DESC);

-- Transactional outbox: written in the same transaction as the change it announces;
-- a relay publishes each row with Nats-Msg-Id = outbox:<id> and marks it published.
CREATE TABLE outbox (
    tenant_id    text NOT NULL,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    subject_kind text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;

CREATE FUNCTION fm_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fm_outbox', NEW.tenant_id);
    RETURN NEW;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION fm_outbox_notify();

-- Row-level security on every tenant table.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'api_keys', 'workflows', 'workflow_versions', 'runs',
                             'step_runs', 'secrets', 'audit_log', 'outbox'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = fm_current_tenant())'
                       ' WITH CHECK (tenant_id = fm_current_tenant())', t);
    END LOOP;
END $$;

-- The outbox relay reads across tenants through exactly two functions, which run as the
-- schema owner; a policy lets only that owner see every outbox row. The runtime role can
-- call the functions but still sees only its tenant's rows in a plain query.
DO $$
BEGIN
    EXECUTE format('CREATE POLICY outbox_relay ON outbox TO %I USING (true) WITH CHECK (true)',
                   current_user);
END $$;

CREATE FUNCTION fm_outbox_pending(max_rows integer)
    RETURNS TABLE (tenant_id text, id bigint, subject_kind text, payload jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT o.tenant_id, o.id, o.subject_kind, o.payload FROM outbox o
          WHERE o.published_at IS NULL ORDER BY o.id LIMIT max_rows $$;

CREATE FUNCTION fm_outbox_mark_published(ids bigint[]) RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ WITH done AS (UPDATE outbox SET published_at = now()
                        WHERE id = ANY(ids) AND published_at IS NULL RETURNING 1)
          SELECT count(*)::integer FROM done $$;

-- Published rows are deleted after a while by the relay through this function.
CREATE FUNCTION fm_outbox_prune(older_than interval) RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ WITH gone AS (DELETE FROM outbox WHERE published_at < now() - older_than RETURNING 1)
          SELECT count(*)::integer FROM gone $$;
