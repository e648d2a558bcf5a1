"""Webhook secrets: made when a ``webhook`` trigger is first stored, shown once, rotatable.

- **Made** (:meth:`WebhookSecrets.mint_missing`) in the transaction that stores a version
  (create, update, apply, import, batch, clone, rollback all store through
  :class:`~flowmesh_registry.workflows.WorkflowOperations`), for each webhook trigger id of
  the version that has no secret yet for its workflow. The write's answer shows them once
  (``Workflow.webhook_secrets``); no other answer, log line, audit entry or event does.
- **Kept** when the trigger goes away: a trigger id added back gets its old secret again
  (not shown again: rotate to get a new one). A row no current version names verifies
  nothing: :meth:`WebhookSecrets.get` says whether the trigger exists.
- **Rotated** (:meth:`WebhookSecrets.rotate`): the new secret is shown once; the previous
  one stays valid for ``grace`` (a rotation within the grace of another drops the oldest).
- **No secrets key** (``secrets_key`` unset): a version with webhook triggers is stored all
  the same, without secrets; its webhooks cannot be verified (the gateway answers 401
  INVALID_SIGNATURE saying so) until a key is configured and the next write of the
  workflow, or a rotation, makes them. Rotation without a key is 503.

Secrets are sealed with the tenant secrets' keyring (:mod:`flowmesh_registry.secretbox`);
the associated data binds each to its tenant, workflow and trigger id.
"""

from __future__ import annotations

import base64
import os
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import structlog

from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.ids import is_trigger_id, parse_uuid
from flowmesh_proto.registry import WebhookKey, WebhookSecret, WebhookSecrets
from flowmesh_proto.workflow import Definition, WebhookTrigger
from flowmesh_registry import audit
from flowmesh_registry.caller import Caller
from flowmesh_registry.db import Database
from flowmesh_registry.resources import check_tenant
from flowmesh_registry.secretbox import Keyring, Sealed, SecretBoxError, UnknownKey
from flowmesh_shared.errors import FlowmeshError, InternalError, NotFound, Unavailable

log = structlog.get_logger("flowmesh.registry")

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES = 32

EXISTING = """
SELECT trigger_id FROM webhook_secrets
WHERE tenant_id = $1 AND workflow_id = $2 AND trigger_id = ANY($3::text[])"""

INSERT_NEW = """
INSERT INTO webhook_secrets (tenant_id, workflow_id, trigger_id, ciphertext, nonce, key_id)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, workflow_id, trigger_id) DO NOTHING
RETURNING trigger_id"""

# The current secret becomes the previous one (valid for $7 seconds more).
ROTATE = """
INSERT INTO webhook_secrets AS s (tenant_id, workflow_id, trigger_id, ciphertext, nonce, key_id)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, workflow_id, trigger_id) DO UPDATE
SET previous_ciphertext = s.ciphertext, previous_nonce = s.nonce,
    previous_key_id = s.key_id, previous_created_at = s.created_at,
    previous_expires_at = now() + make_interval(secs => $7),
    ciphertext = excluded.ciphertext, nonce = excluded.nonce, key_id = excluded.key_id,
    created_at = now()
RETURNING tenant_id, created_at, previous_expires_at"""

# The workflow's current version, its switch and validity, and the trigger's secrets.
CURRENT = """
SELECT w.tenant_id, w.current_version, w.enabled, v.validation_status,
       v.definition -> 'triggers' AS triggers
FROM workflows w
JOIN workflow_versions v
  ON v.tenant_id = w.tenant_id AND v.workflow_id = w.id AND v.version = w.current_version
WHERE w.tenant_id = $1 AND w.id = $2 AND w.deleted_at IS NULL"""

SEALED = """
SELECT tenant_id, ciphertext, nonce, key_id, created_at,
       previous_ciphertext, previous_nonce, previous_key_id, previous_created_at,
       previous_expires_at, previous_expires_at > now() AS previous_live
FROM webhook_secrets WHERE tenant_id = $1 AND workflow_id = $2 AND trigger_id = $3"""


def new_secret() -> str:
    """``whsec_`` and 32 random bytes, URL-safe base64 without padding."""
    token = base64.urlsafe_b64encode(os.urandom(SECRET_BYTES)).rstrip(b"=").decode()
    return SECRET_PREFIX + token


def sealed_name(workflow_id: uuid.UUID, trigger_id: str) -> str:
    """What a secret's ciphertext is bound to besides its tenant (no tenant secret name,
    ``^[A-Z]...``, can be one of these)."""
    return f"webhook/{workflow_id}/{trigger_id}"


def webhook_triggers(triggers: Any) -> dict[str, bool]:
    """Webhook trigger id -> enabled, from a stored definition's ``triggers``."""
    found: dict[str, bool] = {}
    for trigger in triggers if isinstance(triggers, list) else []:
        if isinstance(trigger, dict) and trigger.get("kind") == "webhook":
            found[str(trigger.get("id"))] = trigger.get("enabled", True) is not False
    return found


class WebhookSecretOperations:
    def __init__(self, db: Database, keyring: Keyring | None, grace: timedelta) -> None:
        self.db = db
        self.keyring = keyring
        self.grace = grace

    async def mint_missing(
        self, conn: asyncpg.Connection, caller: Caller, wid: uuid.UUID, definition: Definition
    ) -> dict[str, str]:
        """Make a secret for each webhook trigger of ``definition`` that has none; the new
        ones (trigger id -> secret), to be shown once."""
        wanted = [t.id for t in definition.triggers if isinstance(t, WebhookTrigger)]
        if not wanted:
            return {}
        if self.keyring is None:
            log.warning("webhook.secret_not_made", workflow=str(wid), reason="no secrets key")
            return {}
        rows = await conn.fetch(EXISTING, caller.tenant, wid, wanted)
        have = {row["trigger_id"] for row in rows}
        made: dict[str, str] = {}
        for trigger_id in wanted:
            if trigger_id in have or trigger_id in made:
                continue
            secret = new_secret()
            sealed = self.keyring.seal(caller.tenant, sealed_name(wid, trigger_id), secret)
            inserted = await conn.fetchval(
                INSERT_NEW,
                caller.tenant,
                wid,
                trigger_id,
                sealed.ciphertext,
                sealed.nonce,
                sealed.key_id,
            )
            if inserted is not None:
                made[trigger_id] = secret
        if made:
            detail = {"trigger_ids": sorted(made), "key_id": self.keyring.current_id}
            target = f"workflow:{wid}"
            await audit.record(conn, caller, "webhook.secret_create", target, detail=detail)
        return made

    async def rotate(self, caller: Caller, workflow_id: str, trigger_id: str) -> WebhookSecret:
        """A new secret for the trigger; the previous one stays valid for ``grace``."""
        if self.keyring is None:
            raise Unavailable(
                "no secrets key configured (FLOWMESH_REGISTRY_SECRETS_KEY): "
                "webhook secrets cannot be made"
            )
        wid = _workflow_uuid(workflow_id)
        secret = new_secret()
        sealed = self.keyring.seal(caller.tenant, sealed_name(wid, trigger_id), secret)
        async with self.db.tenant_tx(caller.tenant) as conn:
            current = await _current(conn, caller.tenant, wid)
            if trigger_id not in webhook_triggers(current["triggers"]):
                raise _no_trigger(wid, trigger_id)
            row = await conn.fetchrow(
                ROTATE,
                caller.tenant,
                wid,
                trigger_id,
                sealed.ciphertext,
                sealed.nonce,
                sealed.key_id,
                self.grace.total_seconds(),
            )
            check_tenant(row, caller.tenant)
            expires = row["previous_expires_at"]
            detail = {
                "trigger_id": trigger_id,
                "key_id": sealed.key_id,
                "previous_expires_at": expires.isoformat() if expires else None,
            }
            await audit.record(
                conn, caller, "webhook.secret_rotate", f"workflow:{wid}", detail=detail
            )
        return WebhookSecret(
            workflow_id=str(wid), trigger_id=trigger_id, secret=secret, created_at=row["created_at"]
        )

    async def get(self, tenant: str, workflow_id: str, trigger_id: str) -> WebhookSecrets:
        """What verifies a call to the trigger's webhook, for Flowmesh's own services."""
        wid = _workflow_uuid(workflow_id)
        if not is_trigger_id(trigger_id):
            raise _no_trigger(wid, trigger_id)
        async with self.db.tenant_tx(tenant) as conn:
            current = await _current(conn, tenant, wid)
            row = await conn.fetchrow(SEALED, tenant, wid, trigger_id)
        triggers = webhook_triggers(current["triggers"])
        if row is None and trigger_id not in triggers:
            raise _no_trigger(wid, trigger_id)
        keys: list[WebhookKey] = []
        if row is not None:
            check_tenant(row, tenant)
            keys = self._open_row(tenant, wid, trigger_id, row)
        return WebhookSecrets(
            workflow_id=str(wid),
            trigger_id=trigger_id,
            version=current["current_version"],
            enabled=current["enabled"],
            valid=current["validation_status"] == "valid",
            trigger_exists=trigger_id in triggers,
            trigger_enabled=triggers.get(trigger_id, False),
            secrets=keys,
        )

    def _open_row(
        self, tenant: str, wid: uuid.UUID, trigger_id: str, row: asyncpg.Record
    ) -> list[WebhookKey]:
        if self.keyring is None:
            raise Unavailable(
                "no secrets key configured (FLOWMESH_REGISTRY_SECRETS_KEY): "
                "webhook secrets cannot be read"
            )
        name = sealed_name(wid, trigger_id)
        keys = [WebhookKey(secret=self._open(tenant, name, row, ""), created_at=row["created_at"])]
        if row["previous_live"]:
            keys.append(
                WebhookKey(
                    secret=self._open(tenant, name, row, "previous_"),
                    created_at=row["previous_created_at"],
                    expires_at=row["previous_expires_at"],
                )
            )
        return keys

    def _open(self, tenant: str, name: str, row: asyncpg.Record, prefix: str) -> str:
        assert self.keyring is not None
        sealed = Sealed(
            ciphertext=row[f"{prefix}ciphertext"],
            nonce=row[f"{prefix}nonce"],
            key_id=row[f"{prefix}key_id"],
        )
        try:
            return self.keyring.open(tenant, name, sealed)
        except UnknownKey as exc:
            log.error("webhook.secret_key_missing", secret=name, key_id=sealed.key_id)
            raise Unavailable(str(exc)) from exc
        except SecretBoxError as exc:
            log.error("webhook.secret_unreadable", secret=name, key_id=sealed.key_id)
            raise InternalError(f"webhook secret {name} could not be decrypted") from exc


async def _current(conn: asyncpg.Connection, tenant: str, wid: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(CURRENT, tenant, wid)
    if row is None:
        raise FlowmeshError(ErrorCode.WORKFLOW_NOT_FOUND, f"workflow {wid} was not found")
    check_tenant(row, tenant)
    return row


def _workflow_uuid(value: str) -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise FlowmeshError(ErrorCode.WORKFLOW_NOT_FOUND, f"workflow {value[:64]} was not found")
    return parsed


def _no_trigger(wid: uuid.UUID, trigger_id: str) -> FlowmeshError:
    return NotFound(f"workflow {wid} has no webhook trigger {trigger_id[:64]!r}")
