-- Webhook secrets: one row per (workflow, webhook trigger id), made when the trigger is
-- first stored, sealed like tenant secrets (AES-256-GCM, flowmesh_registry.secretbox; the
-- associated data binds each ciphertext to its tenant, workflow and trigger id).
--
-- Rotation moves the current secret to previous_* with previous_expires_at (now plus the
-- registry's grace period): both verify signatures until then. A row outlives its trigger
-- (a trigger removed from a later version keeps its secret, and gets it back if re-added)
-- and its workflow's soft delete: workflow ids are never reused, and a row that no
-- version names verifies nothing (the gateway asks whether the trigger exists).
CREATE TABLE webhook_secrets (
    tenant_id            text NOT NULL REFERENCES tenants (tenant_id),
    workflow_id          uuid NOT NULL,
    trigger_id           text NOT NULL CHECK (trigger_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    ciphertext           bytea NOT NULL,
    nonce                bytea NOT NULL,
    key_id               text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    previous_ciphertext  bytea,
    previous_nonce       bytea,
    previous_key_id      text,
    previous_created_at  timestamptz,
    previous_expires_at  timestamptz,
    PRIMARY KEY (tenant_id, workflow_id, trigger_id),
    FOREIGN KEY (tenant_id, workflow_id) REFERENCES workflows (tenant_id, id),
    CHECK ((previous_ciphertext IS NULL) = (previous_expires_at IS NULL))
);

ALTER TABLE webhook_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_secrets
    USING (tenant_id = fm_current_tenant()) WITH CHECK (tenant_id = fm_current_tenant());
