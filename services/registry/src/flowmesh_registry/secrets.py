"""Tenant secrets: named values, sealed at rest (:mod:`flowmesh_registry.secretbox`).

Values are write-only: :meth:`SecretOperations.put` takes one, and no reply, log line,
audit entry or event shows one, except :meth:`SecretOperations.resolve`, which answers
Flowmesh's own services (the executor) only.

A stored workflow version records the secrets its expressions name (``secret_refs``).
Deleting a secret turns every version that names it ``invalid`` in the same transaction,
with a validation error that carries the secret's name under ``"secret"`` (a key the wire's
:class:`~flowmesh_proto.errors.ProblemItem` leaves out). Putting the secret back removes
exactly those errors, and a version left with no error is ``valid`` again; one invalid for
another reason too (a deleted sub-workflow, another missing secret) stays invalid.

Creating or changing a workflow reads the tenant's secret names ``FOR KEY SHARE``
(:func:`known_names`), so a secret cannot be deleted between the check and the commit of a
version that names it: the delete waits, then invalidates that version too.
"""

from __future__ import annotations

import asyncpg
import structlog

from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_proto.ids import SECRET_NAME_PATTERN, is_secret_name
from flowmesh_proto.registry import Secret, SecretDeleted, SecretPage, SecretValues, VersionRef
from flowmesh_registry import audit
from flowmesh_registry.caller import Caller
from flowmesh_registry.db import Database
from flowmesh_registry.resources import check_tenant
from flowmesh_registry.secretbox import Keyring, Sealed, SecretBoxError, UnknownKey
from flowmesh_shared.errors import FlowmeshError, InternalError, NotFound, Unavailable

log = structlog.get_logger("flowmesh.registry")

MAX_VALUE_BYTES = 64 * 1024
MAX_RESOLVE_NAMES = 256

KNOWN_NAMES = "SELECT name FROM secrets WHERE tenant_id = $1"

# Held until the version that relies on them commits: a delete waits (updates do not).
KNOWN_NAMES_HELD = "SELECT name FROM secrets WHERE tenant_id = $1 FOR KEY SHARE"

UPSERT_SEALED = """
INSERT INTO secrets (tenant_id, name, ciphertext, nonce, key_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, name) DO UPDATE
SET ciphertext = excluded.ciphertext, nonce = excluded.nonce, key_id = excluded.key_id,
    updated_at = now()
RETURNING tenant_id, name, created_at, updated_at"""

LIST_SECRETS = """
SELECT tenant_id, name, created_at, updated_at FROM secrets WHERE tenant_id = $1 ORDER BY name"""

DELETE_NAMED = """
DELETE FROM secrets WHERE tenant_id = $1 AND name = $2 RETURNING tenant_id, name"""

SEALED_SECRETS = """
SELECT tenant_id, name, ciphertext, nonce, key_id FROM secrets
WHERE tenant_id = $1 AND name = ANY($2::text[])"""

# A stored version that names a deleted secret can no longer run. Each expression reads
# the row being updated, so a concurrent change to the same version is never lost.
INVALIDATE_USERS = """
UPDATE workflow_versions
SET validation_status = 'invalid',
    validation_errors = validation_errors || jsonb_build_array(jsonb_build_object(
        'path', 'nodes', 'code', 'MISSING_VARIABLE',
        'message', 'secret ' || $2::text || ' was deleted', 'secret', $2::text))
WHERE tenant_id = $1 AND $2 = ANY(secret_refs)
  AND NOT validation_errors @> jsonb_build_array(jsonb_build_object('secret', $2::text))
RETURNING workflow_id, version"""

# The secret is back: drop the errors its deletion added; no error left means valid.
REVALIDATE_USERS = """
UPDATE workflow_versions
SET validation_errors = coalesce(
        (SELECT jsonb_agg(e.value ORDER BY e.ordinality)
         FROM jsonb_array_elements(validation_errors) WITH ORDINALITY AS e
         WHERE e.value->>'secret' IS DISTINCT FROM $2::text),
        '[]'::jsonb),
    validation_status = CASE
        WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(validation_errors) AS e
                     WHERE e.value->>'secret' IS DISTINCT FROM $2::text)
        THEN 'invalid' ELSE 'valid' END
WHERE tenant_id = $1 AND $2 = ANY(secret_refs)
  AND validation_errors @> jsonb_build_array(jsonb_build_object('secret', $2::text))
RETURNING workflow_id, version, validation_status"""


async def known_names(conn: asyncpg.Connection, tenant: str, *, hold: bool) -> frozenset[str]:
    """The tenant's secret names; ``hold`` keeps them from being deleted until commit."""
    rows = await conn.fetch(KNOWN_NAMES_HELD if hold else KNOWN_NAMES, tenant)
    return frozenset(row["name"] for row in rows)


class SecretOperations:
    def __init__(self, db: Database, keyring: Keyring | None) -> None:
        self.db = db
        self.keyring = keyring

    def _keys(self) -> Keyring:
        if self.keyring is None:
            raise Unavailable(
                "no secrets key configured (FLOWMESH_REGISTRY_SECRETS_KEY): secrets are unavailable"
            )
        return self.keyring

    async def put(self, caller: Caller, name: str, value: str) -> Secret:
        """Create or replace; versions invalid only for this secret's absence turn valid."""
        keys = self._keys()
        _check(_name_problems("name", name) + _value_problems(value))
        sealed = keys.seal(caller.tenant, name, value)
        async with self.db.tenant_tx(caller.tenant) as conn:
            row = await _upsert(conn, caller.tenant, name, sealed)
            check_tenant(row, caller.tenant)
            restored = await conn.fetch(REVALIDATE_USERS, caller.tenant, name)
            detail = {
                "created": row["created_at"] == row["updated_at"],
                "key_id": sealed.key_id,
                "revalidated": [
                    _ref_text(r) for r in restored if r["validation_status"] == "valid"
                ],
            }
            await audit.record(conn, caller, "secret.put", f"secret:{name}", detail=detail)
        return _secret(row)

    async def delete(self, caller: Caller, name: str) -> SecretDeleted:
        """Delete; every stored version that names the secret turns ``invalid``."""
        self._keys()
        _check(_name_problems("name", name))
        async with self.db.tenant_tx(caller.tenant) as conn:
            row = await conn.fetchrow(DELETE_NAMED, caller.tenant, name)
            if row is None:
                raise not_found(name)
            check_tenant(row, caller.tenant)
            invalidated = await conn.fetch(INVALIDATE_USERS, caller.tenant, name)
            await audit.record(
                conn,
                caller,
                "secret.delete",
                f"secret:{name}",
                detail={"invalidated": [_ref_text(r) for r in invalidated]},
            )
        refs = [
            VersionRef(workflow_id=str(r["workflow_id"]), version=r["version"]) for r in invalidated
        ]
        return SecretDeleted(name=name, invalidated=refs)

    async def list_secrets(self, tenant: str) -> SecretPage:
        self._keys()
        async with self.db.tenant_tx(tenant) as conn:
            rows = await conn.fetch(LIST_SECRETS, tenant)
        items = []
        for row in rows:
            check_tenant(row, tenant)
            items.append(_secret(row))
        return SecretPage(items=items)

    async def resolve(self, tenant: str, names: list[str]) -> SecretValues:
        """The values of ``names``, for Flowmesh's own services; NOT_FOUND names the missing."""
        keys = self._keys()
        if len(names) > MAX_RESOLVE_NAMES:
            _check([_problem("names", f"at most {MAX_RESOLVE_NAMES} names at once")])
        _check([p for i, n in enumerate(names) for p in _name_problems(f"names[{i}]", n)])
        async with self.db.tenant_tx(tenant) as conn:
            rows = await conn.fetch(SEALED_SECRETS, tenant, sorted(set(names)))
        values: dict[str, str] = {}
        for row in rows:
            check_tenant(row, tenant)
            values[row["name"]] = _open(keys, tenant, row)
        missing = [(i, name) for i, name in enumerate(names) if name not in values]
        if missing:
            raise _missing(missing)
        return SecretValues(values=values)


def not_found(name: str) -> FlowmeshError:
    return NotFound(f"secret {name} was not found")


def _missing(missing: list[tuple[int, str]]) -> FlowmeshError:
    """One NOT_FOUND naming every missing secret, each at its place in ``names``."""
    listed = ", ".join(dict.fromkeys(name for _, name in missing))
    errors = [
        ProblemItem(path=f"names[{i}]", code=ErrorCode.NOT_FOUND.name, message=f"no secret {name}")
        for i, name in missing
    ]
    return NotFound(f"no secret named {listed}", errors=errors)


async def _upsert(
    conn: asyncpg.Connection, tenant: str, name: str, sealed: Sealed
) -> asyncpg.Record:
    try:
        return await conn.fetchrow(
            UPSERT_SEALED, tenant, name, sealed.ciphertext, sealed.nonce, sealed.key_id
        )
    except asyncpg.ForeignKeyViolationError as exc:  # only a service can name no tenant
        raise NotFound(f"tenant {tenant!r} was not found") from exc


def _open(keys: Keyring, tenant: str, row: asyncpg.Record) -> str:
    sealed = Sealed(ciphertext=row["ciphertext"], nonce=row["nonce"], key_id=row["key_id"])
    try:
        return keys.open(tenant, row["name"], sealed)
    except UnknownKey as exc:
        log.error("secret.key_missing", secret=row["name"], key_id=sealed.key_id)
        raise Unavailable(str(exc)) from exc
    except SecretBoxError as exc:
        log.error("secret.unreadable", secret=row["name"], key_id=sealed.key_id)
        raise InternalError(f"secret {row['name']} could not be decrypted") from exc


def _secret(row: asyncpg.Record) -> Secret:
    return Secret(name=row["name"], created_at=row["created_at"], updated_at=row["updated_at"])


def _ref_text(row: asyncpg.Record) -> str:
    return f"{row['workflow_id']}@{row['version']}"


def _problem(path: str, message: str) -> ProblemItem:
    return ProblemItem(path=path, code=ErrorCode.VALIDATION_FAILED.name, message=message)


def _name_problems(path: str, name: str) -> list[ProblemItem]:
    if is_secret_name(name):
        return []
    return [_problem(path, f"a secret name matches {SECRET_NAME_PATTERN}")]


def _value_problems(value: str) -> list[ProblemItem]:
    """Never quotes the value, only its size."""
    if not value:
        return [_problem("value", "a secret's value is not empty")]
    size = len(value.encode())
    if size > MAX_VALUE_BYTES:
        return [_problem("value", f"{size} bytes; a value has at most {MAX_VALUE_BYTES}")]
    return []


def _check(problems: list[ProblemItem]) -> None:
    if problems:
        raise FlowmeshError(ErrorCode.VALIDATION_FAILED, problems[0].message, errors=problems)
