-- What a stored workflow version depends on besides secrets and sub-workflows (issue 17):
-- the connectors its http and action nodes name, and the tenant's own actions its action
-- nodes name. Deleting one turns the versions that name it invalid; making it again turns
-- them valid (flowmesh_registry.dependents). Existing versions get their connectors from
-- their definitions (http nodes, action nodes, and maps' per-item nodes).
ALTER TABLE workflow_versions
    ADD COLUMN connector_refs text[] NOT NULL DEFAULT '{}',
    ADD COLUMN action_refs    text[] NOT NULL DEFAULT '{}';

CREATE INDEX workflow_versions_connectors ON workflow_versions USING gin (connector_refs);
CREATE INDEX workflow_versions_actions ON workflow_versions USING gin (action_refs);

UPDATE workflow_versions
SET connector_refs = ARRAY(
    SELECT DISTINCT named.value #>> '{}'
    FROM (
        SELECT jsonb_path_query(definition, '$.nodes[*].parameters.connector') AS value
        UNION ALL
        SELECT jsonb_path_query(definition, '$.nodes[*].parameters.node.parameters.connector')
    ) AS named
    WHERE jsonb_typeof(named.value) = 'string'
    ORDER BY 1)
WHERE definition @? '$.nodes[*].parameters.connector'
   OR definition @? '$.nodes[*].parameters.node.parameters.connector';
