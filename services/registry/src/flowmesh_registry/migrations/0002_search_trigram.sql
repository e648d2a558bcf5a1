-- Fast text search and tag filters for workflow listings.
--
-- Under row-level security PostgreSQL will not use a non-LEAKPROOF operator (ILIKE, @@,
-- @> on arrays) as an index condition for a role the policy applies to, so the runtime
-- role's searches read every workflow of the tenant. fm_matching_workflows runs as the
-- schema owner, whose SELECT policy below admits every row, and takes the tenant from the
-- transaction's app.tenant_id: exactly the rows the tenant policy admits, found through
-- the indexes. It returns ids only; the listing reads the rows themselves under RLS.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX workflows_name_trgm ON workflows USING gin (name gin_trgm_ops);
CREATE INDEX workflows_description_trgm ON workflows USING gin (description gin_trgm_ops);

DO $$
BEGIN
    EXECUTE format('CREATE POLICY owner_search ON workflows FOR SELECT TO %I USING (true)',
                   current_user);
END $$;

-- ROWS 50: a search finds few workflows; the default guess (1000) makes the listing scan
-- the tenant's workflows instead of fetching the few it found.
-- EXECUTE plans each call with its values, so the absent filter folds away and the
-- present ones use their indexes (a static body would get one generic plan).
CREATE FUNCTION fm_matching_workflows(query text, pattern text, wanted_tags text[])
    RETURNS SETOF uuid ROWS 50
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
BEGIN
    RETURN QUERY EXECUTE
        'SELECT w.id FROM workflows w
         WHERE w.tenant_id = fm_current_tenant() AND w.deleted_at IS NULL
           AND ($1::text IS NULL
                OR w.search @@ websearch_to_tsquery(''simple'', $1)
                OR w.name ILIKE $2 OR w.description ILIKE $2)
           AND (cardinality($3::text[]) = 0 OR w.tags @> $3)'
        USING query, pattern, wanted_tags;
END $$;
