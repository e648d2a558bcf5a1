"""Tenant secrets: named values, sealed at rest (:mod:`flowmesh_registry.secretbox`).

Values are write-only: :meth:`SecretOperations.put` takes one, and no reply, log line,
audit entry or event shows one, except :meth:`SecretOperations.resolve`, which answers
Flowmesh's own services (the executor) only.

A stored workflow version records the secrets its expressions name (``secret_refs``).
Deleting a secret turns every version that names it ``invalid``; putting it back makes
those versions valid again unless something else is missing
(:mod:`flowmesh_registry.dependents`).

Creating or changing a workflow reads the tenant's secret names ``FOR KEY SHARE``
(:func:`known_names`), so a secret cannot be deleted between the check and the commit of a
version that names it: the delete waits, then invalidates that version too.
"""

from __future__ import annotations

import asyncpg
import structlog

from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_proto.ids import SECRET_NAME_PATTERN, is_secret_name
from flowmesh_proto.registry import Secret, SecretDeleted, SecretPage, SecretValues
from flowmesh_registry import audit
from flowmesh_registry.caller import Caller
from flowmesh_registry.db import Database
from flowmesh_registry.dependents import (
    invalidate_users,
    revalidate_users,
    version_refs,
    version_text,
)
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
            restored = await revalidate_users(conn, caller.tenant, "secret", name)
            detail = {
                "created": row["created_at"] == row["updated_at"],
                "key_id": sealed.key_id,
                "revalidated": [
                    version_text(r) for r in restored if r["validation_status"] == "valid"
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
            invalidated = await invalidate_users(conn, caller.tenant, "secret", name)
            await audit.record(
                conn,
                caller,
                "secret.delete",
                f"secret:{name}",
                detail={"invalidated": [version_text(r) for r in invalidated]},
            )
        refs = version_refs(invalidated)
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
