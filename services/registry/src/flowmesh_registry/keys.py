"""Tenants and API keys.

A key reads ``fm_<tenant>_<secret>``: the tenant part lets verification set the tenant
before it looks the key up, so even key lookups run under row-level security. Only the
SHA-256 of a key is stored; a key has 256 random bits, so a slow password hash would add
cost and no safety. The key itself appears in exactly one reply, the one that creates it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

import asyncpg
import msgspec

from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_proto.ids import new_id, parse_uuid, tenant_id_problem
from flowmesh_proto.registry import (
    MAX_RUN_RETENTION_DAYS,
    MAX_TENANT_HOLDS,
    MAX_TENANT_QUEUED_RUNS,
    MAX_TENANT_RUNNING,
    MAX_TENANT_WEIGHT,
    ApiKey,
    ApiKeyIdentity,
    ApiKeyPage,
    ApiKeySecret,
    RateLimit,
    Tenant,
    TenantCreated,
    TenantUpdate,
)
from flowmesh_registry import audit
from flowmesh_registry.caller import Caller
from flowmesh_registry.db import Database
from flowmesh_registry.problems import field_problem
from flowmesh_registry.resources import check_tenant
from flowmesh_shared.errors import FlowmeshError

KEY_PREFIX = "fm_"

INSERT_TENANT = """
INSERT INTO tenants (tenant_id, name) VALUES ($1, $2) RETURNING tenant_id, name, created_at"""
GET_TENANT = "SELECT tenant_id, name, created_at, settings FROM tenants WHERE tenant_id = $1"
UPDATE_TENANT = """
UPDATE tenants
SET name = coalesce($2, name),
    settings = settings
        || CASE WHEN $3::boolean THEN jsonb_build_object('rate_limit', $4::jsonb)
                ELSE '{}'::jsonb END
        || CASE WHEN $5::boolean THEN jsonb_build_object('run_retention_days', $6::integer)
                ELSE '{}'::jsonb END
        || $7::jsonb
WHERE tenant_id = $1
RETURNING tenant_id, name, created_at, settings"""
INSERT_KEY = """
INSERT INTO api_keys (tenant_id, id, name, role, key_hash, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, name, role, created_at"""
LIST_KEYS = """
SELECT tenant_id, id, name, role, created_at, created_by, last_used_at, revoked_at
FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"""
REVOKE_KEY = """
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE tenant_id = $1 AND id = $2
RETURNING tenant_id, id, name, role, created_at, created_by, last_used_at, revoked_at"""
FIND_KEY = """
SELECT tenant_id, id, name, role, key_hash, revoked_at, last_used_at
FROM api_keys WHERE tenant_id = $1 AND key_hash = $2"""
GET_KEY = """
SELECT tenant_id, id, name, role, revoked_at FROM api_keys WHERE tenant_id = $1 AND id = $2"""
TOUCH_KEY = """
UPDATE api_keys SET last_used_at = now()
WHERE tenant_id = $1 AND id = $2
  AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"""


def new_key(tenant: str) -> str:
    return f"{KEY_PREFIX}{tenant}_{secrets.token_urlsafe(32)}"


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def tenant_of_key(key: str) -> str | None:
    """The tenant a key names, or None when it is not shaped like one of ours."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    tenant, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(secret) < 32 or tenant_id_problem(tenant) is not None:
        return None
    return tenant


def unauthenticated() -> FlowmeshError:
    return FlowmeshError(ErrorCode.UNAUTHENTICATED, "the API key is not valid")


class KeyOperations:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_tenant(self, caller: Caller, tenant_id: str, name: str) -> TenantCreated:
        problem = tenant_id_problem(tenant_id)
        if problem is not None:
            raise FlowmeshError(ErrorCode.VALIDATION_FAILED, problem)
        owner = Caller(tenant=tenant_id, actor=caller.actor, request_id=caller.request_id)
        async with self.db.tenant_tx(tenant_id) as conn:
            try:
                async with conn.transaction():
                    row = await conn.fetchrow(INSERT_TENANT, tenant_id, name or tenant_id)
            except asyncpg.UniqueViolationError as exc:
                raise FlowmeshError(
                    ErrorCode.CONFLICT, f"tenant {tenant_id!r} already exists"
                ) from exc
            key = await self._insert_key(conn, owner, "admin", "admin")
            await audit.record(conn, owner, "tenant.create", f"tenant:{tenant_id}")
        return TenantCreated(
            id=row["tenant_id"], name=row["name"], created_at=row["created_at"], admin_key=key
        )

    async def get_tenant(self, tenant_id: str) -> Tenant:
        async with self.db.tenant_tx(tenant_id) as conn:
            row = await conn.fetchrow(GET_TENANT, tenant_id)
        if row is None:
            raise FlowmeshError(ErrorCode.NOT_FOUND, f"tenant {tenant_id!r} was not found")
        return _tenant(row, tenant_id)

    async def update_tenant(self, caller: Caller, request: TenantUpdate) -> Tenant:
        """Rename a tenant, set its rate limit, run retention, quotas or share of the
        executors (``None``: the default)."""
        limit = request.rate_limit
        retention = request.run_retention_days
        if isinstance(retention, int) and not 1 <= retention <= MAX_RUN_RETENTION_DAYS:
            message = f"run_retention_days must be between 1 and {MAX_RUN_RETENTION_DAYS}"
            raise field_problem("run_retention_days", message)
        if isinstance(limit, RateLimit) and not (0 < limit.rate <= 1e6 and 1 <= limit.burst <= 1e7):
            raise FlowmeshError(
                ErrorCode.VALIDATION_FAILED,
                "rate_limit needs 0 < rate <= 1000000 and 1 <= burst <= 10000000",
                errors=[
                    ProblemItem(path="rate_limit", code="VALIDATION_FAILED", message="out of range")
                ],
            )
        quotas = _quota_changes(request)
        if request.name is not None and not 1 <= len(request.name) <= 200:
            raise FlowmeshError(ErrorCode.VALIDATION_FAILED, "name must be 1..200 characters")
        setting = None if limit is msgspec.UNSET or limit is None else msgspec.to_builtins(limit)
        async with self.db.tenant_tx(request.id) as conn:
            row = await conn.fetchrow(
                UPDATE_TENANT,
                request.id,
                request.name,
                limit is not msgspec.UNSET,
                setting,
                retention is not msgspec.UNSET,
                None if isinstance(retention, msgspec.UnsetType) else retention,
                quotas,
            )
            if row is None:
                raise FlowmeshError(ErrorCode.NOT_FOUND, f"tenant {request.id!r} was not found")
            changes: dict[str, object] = {"name": request.name, "rate_limit": setting}
            if not isinstance(retention, msgspec.UnsetType):
                changes["run_retention_days"] = retention
            changes.update(quotas)
            await audit.record(
                conn, caller, "tenant.update", f"tenant:{request.id}", detail=changes
            )
        return _tenant(row, request.id)

    async def create_key(self, caller: Caller, name: str, role: str) -> ApiKeySecret:
        if not 1 <= len(name) <= 200:
            raise FlowmeshError(ErrorCode.VALIDATION_FAILED, "name must be 1..200 characters")
        async with self.db.tenant_tx(caller.tenant) as conn:
            if await conn.fetchrow(GET_TENANT, caller.tenant) is None:
                raise FlowmeshError(ErrorCode.NOT_FOUND, f"tenant {caller.tenant!r} was not found")
            created = await self._insert_key(conn, caller, name, role)
            await audit.record(
                conn, caller, "apikey.create", f"apikey:{created.id}", detail={"role": role}
            )
        return created

    async def _insert_key(
        self, conn: asyncpg.Connection, caller: Caller, name: str, role: str
    ) -> ApiKeySecret:
        key = new_key(caller.tenant)
        row = await conn.fetchrow(
            INSERT_KEY, caller.tenant, new_id(), name, role, key_hash(key), caller.actor
        )
        return ApiKeySecret(
            id=str(row["id"]),
            name=row["name"],
            role=row["role"],
            key=key,
            created_at=row["created_at"],
        )

    async def list_keys(self, tenant: str) -> ApiKeyPage:
        async with self.db.tenant_tx(tenant) as conn:
            rows = await conn.fetch(LIST_KEYS, tenant)
        return ApiKeyPage(items=[_api_key(row, tenant) for row in rows])

    async def revoke_key(self, caller: Caller, key_id: str) -> ApiKey:
        kid = parse_uuid(key_id)
        if kid is None:
            raise FlowmeshError(ErrorCode.NOT_FOUND, f"API key {key_id} was not found")
        async with self.db.tenant_tx(caller.tenant) as conn:
            row = await conn.fetchrow(REVOKE_KEY, caller.tenant, kid)
            if row is None:
                raise FlowmeshError(ErrorCode.NOT_FOUND, f"API key {key_id} was not found")
            await audit.record(conn, caller, "apikey.revoke", f"apikey:{kid}")
        return _api_key(row, caller.tenant)

    async def verify_key(self, key: str) -> ApiKeyIdentity:
        """Who a bearer key is; UNAUTHENTICATED for unknown, malformed or revoked keys."""
        tenant = tenant_of_key(key)
        if tenant is None:
            raise unauthenticated()
        digest = key_hash(key)
        async with self.db.tenant_tx(tenant) as conn:
            row = await conn.fetchrow(FIND_KEY, tenant, digest)
            if row is None or row["revoked_at"] is not None:
                raise unauthenticated()
            if not hmac.compare_digest(row["key_hash"], digest):
                raise unauthenticated()
            check_tenant(row, tenant)
            await conn.execute(TOUCH_KEY, tenant, row["id"])
        return ApiKeyIdentity(
            tenant=tenant, key_id=str(row["id"]), name=row["name"], role=row["role"]
        )

    async def check_key(self, tenant: str, key_id: str) -> ApiKeyIdentity:
        """Who the key ``key_id`` is now (a console session holds its id, not the key);
        UNAUTHENTICATED for an unknown or revoked one."""
        kid = parse_uuid(key_id)
        if kid is None:
            raise unauthenticated()
        async with self.db.tenant_tx(tenant) as conn:
            row = await conn.fetchrow(GET_KEY, tenant, kid)
        if row is None or row["revoked_at"] is not None:
            raise unauthenticated()
        check_tenant(row, tenant)
        return ApiKeyIdentity(
            tenant=tenant, key_id=str(row["id"]), name=row["name"], role=row["role"]
        )


def _tenant(row: asyncpg.Record, tenant: str) -> Tenant:
    check_tenant(row, tenant)
    settings = row["settings"] or {}
    limit = settings.get("rate_limit")
    return Tenant(
        id=row["tenant_id"],
        name=row["name"],
        created_at=row["created_at"],
        rate_limit=msgspec.convert(limit, RateLimit) if limit else None,
        run_retention_days=settings.get("run_retention_days"),
        max_holds=settings.get("max_holds"),
        max_queued_runs=settings.get("max_queued_runs"),
        weight=settings.get("weight"),
        max_running=settings.get("max_running"),
    )


#: A tenant's limits and their bounds: its quotas (the gateway enforces them) and its share
#: of the executors (``weight``, ``max_running``: the executors take its runs by them,
#: DESIGN section 13).
_LIMIT_BOUNDS = {
    "max_holds": (0, MAX_TENANT_HOLDS),
    "max_queued_runs": (0, MAX_TENANT_QUEUED_RUNS),
    "weight": (1, MAX_TENANT_WEIGHT),
    "max_running": (1, MAX_TENANT_RUNNING),
}


def _quota_changes(request: TenantUpdate) -> dict[str, int | None]:
    """The limits ``request`` sets (``None``: back to the default); 422 out of range."""
    changes: dict[str, int | None] = {}
    for name, (least, most) in _LIMIT_BOUNDS.items():
        value = getattr(request, name)
        if isinstance(value, msgspec.UnsetType):
            continue
        if value is not None and not least <= value <= most:
            raise field_problem(name, f"{name} must be between {least} and {most}")
        changes[name] = value
    return changes


def _api_key(row: asyncpg.Record, tenant: str) -> ApiKey:
    check_tenant(row, tenant)
    key_id: uuid.UUID = row["id"]
    return ApiKey(
        id=str(key_id),
        name=row["name"],
        role=row["role"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )
