-- Connectors (DESIGN section 16, issue 17): a tenant's stored description of an external
-- service: base URL, hosts, default headers and auth, as JSONB (flowmesh_proto.connectors).
-- The spec names secrets, never holds a value. A PUT replaces the spec and adds one to
-- version; a DELETE removes the row (a connector made again under the name starts at 1).
CREATE TABLE connectors (
    tenant_id  text NOT NULL REFERENCES tenants (tenant_id),
    name       text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    spec       jsonb NOT NULL,
    version    integer NOT NULL CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

ALTER TABLE connectors ENABLE ROW LEVEL SECURITY;
ALTER TABLE connectors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON connectors
    USING (tenant_id = fm_current_tenant()) WITH CHECK (tenant_id = fm_current_tenant());
