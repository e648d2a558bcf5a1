-- Tenant actions (DESIGN section 16): a tenant's own named templates of an HTTP call over
-- a connector (flowmesh_proto.actions.ActionSpec), versioned like workflows: one row per
-- action (its current version) and one immutable row per version. A DELETE removes the
-- action with every version (one made again under the name starts at version 1).
-- stored_bytes sums the sizes of an action's versions (a tenant's total is bounded).
CREATE TABLE actions (
    tenant_id       text NOT NULL REFERENCES tenants (tenant_id),
    name            text NOT NULL
                    CHECK (name ~ '^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,62})?$'),
    current_version integer NOT NULL CHECK (current_version >= 1),
    stored_bytes    bigint NOT NULL CHECK (stored_bytes >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE action_versions (
    tenant_id  text NOT NULL,
    name       text NOT NULL,
    version    integer NOT NULL CHECK (version >= 1),
    spec       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    PRIMARY KEY (tenant_id, name, version),
    FOREIGN KEY (tenant_id, name) REFERENCES actions (tenant_id, name) ON DELETE CASCADE
);

ALTER TABLE actions ENABLE ROW LEVEL SECURITY;
ALTER TABLE actions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON actions
    USING (tenant_id = fm_current_tenant()) WITH CHECK (tenant_id = fm_current_tenant());

ALTER TABLE action_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE action_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON action_versions
    USING (tenant_id = fm_current_tenant()) WITH CHECK (tenant_id = fm_current_tenant());
