-- The trigger catalogue: every live workflow of every tenant whose current version has
-- triggers, for the scheduler's full reload (registry operation trigger_catalogue).
--
-- Reading across tenants is what row-level security forbids the runtime role, so the read
-- goes through fm_trigger_catalogue, which runs as the schema owner. 0002 already lets the
-- owner SELECT every workflow (owner_search); the policy below lets it SELECT every
-- version too. The runtime role's plain queries still see only the tenant in
-- app.tenant_id; the function returns only what the scheduler needs (ids, the current
-- version's number, the switch, the validity and the triggers), never a node or a secret.
DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_catalogue ON workflow_versions FOR SELECT TO %I'
                   ' USING (true)', current_user);
END $$;

-- Keyset pages in (tenant_id, id) order, the primary key's: after_tenant NULL starts at the
-- beginning. A version whose definition has no triggers (the key is left out when empty)
-- is not listed; disabled workflows and invalid versions are (the scheduler decides).
CREATE FUNCTION fm_trigger_catalogue(after_tenant text, after_id uuid, max_rows integer)
    RETURNS TABLE (tenant_id text, workflow_id uuid, version integer, enabled boolean,
                   validation_status text, triggers jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT w.tenant_id, w.id, w.current_version, w.enabled, v.validation_status,
                 v.definition -> 'triggers'
          FROM workflows w
          JOIN workflow_versions v
            ON v.tenant_id = w.tenant_id AND v.workflow_id = w.id
           AND v.version = w.current_version
          WHERE w.deleted_at IS NULL
            AND jsonb_typeof(v.definition -> 'triggers') = 'array'
            AND jsonb_array_length(v.definition -> 'triggers') > 0
            AND (after_tenant IS NULL OR (w.tenant_id, w.id) > (after_tenant, after_id))
          ORDER BY w.tenant_id, w.id
          LIMIT max_rows $$;
