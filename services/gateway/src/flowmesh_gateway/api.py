"""Routes of the API and the guard every request passes before its handler runs.

Order of judgement (DESIGN §7): credentials (401) → the tenant in the path (403
TENANT_MISMATCH, audited) → the role (403 FORBIDDEN, audited) → rate limits (429) → the
handler, which asks the registry about the resource (404) before it reads the body
(400/413/415/422). A caller that fails a check learns nothing about the resource or body.

Routes of the ``signature`` role (webhooks) carry no credentials: the request's signature
is one, and only the handler can check it (it needs the body and the webhook's secret).
Their handler acts for the path's tenant as the gateway itself, calls :meth:`Call.admit`
once the signature holds (rate limits), and every 401 it answers counts against the
client's failed-authentication budget.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import msgspec
import structlog
from aiohttp import web

from flowmesh_gateway.auth import GATEWAY_PRINCIPAL, Authenticator, Identity
from flowmesh_gateway.console import Console
from flowmesh_gateway.events import EventPublisher
from flowmesh_gateway.holds import HoldLimits
from flowmesh_gateway.inputs import InputSchemas
from flowmesh_gateway.quotas import Quotas, digest, rate_key
from flowmesh_gateway.ratelimit import (
    DEFAULT_QUOTA,
    Decision,
    RateLimited,
    RateLimiter,
    TenantLimits,
    TenantQuota,
)
from flowmesh_gateway.replays import Replays
from flowmesh_gateway.runs import Runs
from flowmesh_gateway.sessions import COOKIE
from flowmesh_gateway.settings import GatewaySettings
from flowmesh_gateway.streams import LiveStreams
from flowmesh_proto import registry as r
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.operations import Rep, Request
from flowmesh_shared.errors import FlowmeshError
from flowmesh_shared.rpc import RpcClient

log = structlog.get_logger("flowmesh.gateway")

T = TypeVar("T")

PLATFORM = "platform"  # the role of routes only the platform admin token opens
SIGNATURE = "signature"  # the role of routes whose credential is the request's signature
CONSOLE = "console"  # the role of the console's session routes (their handler judges)
EVENT_STREAM = "events"  # a Route's response: Server-Sent Events of run events
SETTINGS = web.AppKey("settings", GatewaySettings)
RUNS = web.AppKey("runs", Runs)
INPUT_SCHEMAS = web.AppKey("input_schemas", InputSchemas)
STREAMS = web.AppKey("streams", LiveStreams)
EVENTS = web.AppKey("events", EventPublisher)
REPLAYS = web.AppKey("replays", Replays)
QUOTAS = web.AppKey("quotas", Quotas)
CONSOLE_SESSIONS = web.AppKey("console", Console)

Admit = Callable[[Identity], Awaitable[TenantQuota]]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """The rate limits: ``tenant`` and ``key`` are this replica's own buckets, used when
    ``shared`` (every replica's) cannot be reached or is None (one gateway alone)."""

    tenant: RateLimiter
    key: RateLimiter
    auth_failures: RateLimiter
    #: Console sign-ins per client address.
    sign_ins: RateLimiter
    tenant_overrides: TenantLimits
    shared: Quotas | None = None


class Call:
    """One authorized request: who asks, for which tenant, and a registry client for them."""

    def __init__(
        self,
        request: web.Request,
        identity: Identity | None,
        registry: RpcClient,
        rid: str,
        admit: Admit | None = None,
    ) -> None:
        self.request = request
        self.identity = identity
        self.tenant = identity.tenant if identity else ""
        self.request_id = rid
        self._registry = registry
        self._admit = admit
        #: The tenant's own limits (known once the guard has checked its rate).
        self.quota: TenantQuota = DEFAULT_QUOTA

    def holding(self) -> AbstractAsyncContextManager[None]:
        """One concurrent hold (an SSE stream, a ``?wait``) of this caller for the block's
        duration: 429 past the credential's or the tenant's limit (DESIGN section 12)."""
        settings = self.request.app[SETTINGS]
        limits = HoldLimits(
            per_credential=settings.credential_max_holds,
            per_tenant=settings.tenant_max_holds
            if self.quota.max_holds is None
            else self.quota.max_holds,
        )
        credential = self.identity.credential if self.identity else ""
        return self.request.app[QUOTAS].hold(self.tenant, credential, limits)

    async def admit(self, credential: str) -> None:
        """A signature route's caller, once its signature holds: the rate limits of the
        tenant and of ``credential`` (the webhook) apply (429)."""
        if self._admit is None or self.identity is None:
            raise RuntimeError("admit is for routes of the signature role")
        identity = msgspec.structs.replace(self.identity, credential=credential)
        self.quota = await self._admit(identity)

    @property
    def body_limit(self) -> int:
        return self.request.app[SETTINGS].max_body_bytes

    async def registry(self, body: Request[Rep]) -> Rep:
        """Call the registry operation ``body`` names, with this caller's tenant and
        principal injected; the reply is the type ``body`` declares."""
        if self.identity is None:  # platform admin routes
            return await self._registry.call(
                body, principal="platform:admin", request_id=self.request_id
            )
        return await self._registry.call(
            body,
            tenant=self.tenant,
            principal=self.identity.principal,
            request_id=self.request_id,
        )


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """One endpoint: what it does, who may call it, and its shapes (for OpenAPI)."""

    method: str
    path: str
    handler: Handler
    role: str
    summary: str
    operation_id: str
    status: int = 200
    body: Any = None
    #: False: the body may be left out (its Struct's defaults apply).
    body_required: bool = True
    response: Any = None
    #: Other successful answers, for OpenAPI: (status, response type, description).
    also: tuple[tuple[int, Any, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    #: Statuses beyond the common ones this route can answer (409, 412, 423), for OpenAPI.
    conflicts: tuple[str, ...] = ()
    #: A valid body, shown in OpenAPI as the request's example.
    example: Any = None


class Guard:
    def __init__(
        self, auth: Authenticator, registry: RpcClient, limits: Limits, console: Console
    ) -> None:
        self.auth, self.registry, self.limits = auth, registry, limits
        self.console = console

    def wrap(
        self, route: Route, request_id: Callable[[web.Request], str]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            rid = request_id(request)
            if route.role == PLATFORM:
                self._check_admin(request)
                return await route.handler(Call(request, None, self.registry, rid))
            if route.role == SIGNATURE:
                return await self._signed(route, request, rid)
            if route.role == CONSOLE:  # the handler judges; as nobody, never as an admin
                nobody = Identity(tenant="", principal="", role="viewer", credential="")
                return await route.handler(Call(request, nobody, self.registry, rid))
            identity = await self._identify(request)
            await self._check_tenant(request, identity, route, rid)
            await self._check_role(identity, route, rid)
            quota = await self._check_rate(identity)
            structlog.contextvars.bind_contextvars(tenant=identity.tenant)
            call = Call(request, identity, self.registry, rid)
            call.quota = quota
            return await route.handler(call)

        return guarded

    async def _signed(self, route: Route, request: web.Request, rid: str) -> web.StreamResponse:
        """A signature route: the handler verifies; its 401s count as failed authentications."""
        tenant = request.match_info.get("tenant", "")
        identity = Identity(
            tenant=tenant, principal=GATEWAY_PRINCIPAL, role="operator", credential=""
        )
        call = Call(request, identity, self.registry, rid, admit=self._admit_signed)
        try:
            return await route.handler(call)
        except FlowmeshError as exc:
            if exc.code is ErrorCode.INVALID_SIGNATURE:
                self._count_failure(request)
            raise

    async def _admit_signed(self, identity: Identity) -> TenantQuota:
        quota = await self._check_rate(identity)
        structlog.contextvars.bind_contextvars(tenant=identity.tenant)
        return quota

    def _check_admin(self, request: web.Request) -> None:
        if not self.auth.is_admin(request.headers.get("Authorization")):
            self._count_failure(request)
            raise FlowmeshError(ErrorCode.UNAUTHENTICATED, "the platform admin token is required")

    async def _identify(self, request: web.Request) -> Identity:
        """The bearer credential; without one, the console session cookie (and its CSRF
        token on a change)."""
        header = request.headers.get("Authorization")
        if header is None and COOKIE in request.cookies:
            return await self.console.identify(request)
        try:
            return await self.auth.identify(header)
        except FlowmeshError as exc:
            if exc.code is ErrorCode.UNAUTHENTICATED:
                self._count_failure(request)
            raise

    def _count_failure(self, request: web.Request) -> None:
        self.console.count_failure(request)

    async def _check_tenant(
        self, request: web.Request, identity: Identity, route: Route, rid: str
    ) -> None:
        tenant = request.match_info.get("tenant")
        if tenant is not None and tenant != identity.tenant:
            await self._audit_denied(
                identity, route, rid, f"tenant:{tenant[:64]}", "TENANT_MISMATCH"
            )
            raise FlowmeshError(
                ErrorCode.TENANT_MISMATCH, "the credentials do not belong to this tenant"
            )

    async def _check_role(self, identity: Identity, route: Route, rid: str) -> None:
        if not identity.allows(route.role):
            await self._audit_denied(identity, route, rid, route.operation_id, "FORBIDDEN")
            raise FlowmeshError(
                ErrorCode.FORBIDDEN,
                f"this needs the {route.role} role; the caller is {identity.role}",
            )

    async def _check_rate(self, identity: Identity) -> TenantQuota:
        """The credential's and the tenant's rate limits (429); the tenant's own limits."""
        limits = self.limits
        credential = digest(identity.tenant, identity.credential)
        decision = await self._take(
            rate_key("credential", credential), limits.key, limits.key.rate, limits.key.burst
        )
        if not decision.allowed:
            raise RateLimited(decision, "credential")
        quota = await self._tenant_quota(identity.tenant)
        rate, burst = quota.rate or limits.tenant.rate, quota.burst or limits.tenant.burst
        decision = await self._take(rate_key("tenant", identity.tenant), limits.tenant, rate, burst)
        if not decision.allowed:
            raise RateLimited(decision, "tenant")
        return quota

    async def _take(self, key: str, local: RateLimiter, rate: float, burst: int) -> Decision:
        if self.limits.shared is None:
            return local.take(key, time.monotonic(), rate=rate, burst=burst)
        return await self.limits.shared.take(key, rate, burst, local)

    async def _tenant_quota(self, tenant: str) -> TenantQuota:
        """The tenant's own limits (the defaults where it has none), asked of the registry
        now and then."""
        now = time.monotonic()
        known = self.limits.tenant_overrides.get(tenant, now)
        if known is not None:
            return known
        try:
            found = await self.registry.call(r.TenantGet(id=tenant), principal=GATEWAY_PRINCIPAL)
        except FlowmeshError as exc:  # no answer: the default, asked again soon
            log.warning("ratelimit.tenant_unknown", tenant=tenant, error=exc.detail)
            return DEFAULT_QUOTA
        limit = found.rate_limit
        quota = TenantQuota(
            rate=limit.rate if limit is not None else 0.0,
            burst=limit.burst if limit is not None else 0,
            max_holds=found.max_holds,
            max_queued_runs=found.max_queued_runs,
        )
        self.limits.tenant_overrides.put(tenant, quota, now)
        return quota

    async def _audit_denied(
        self, identity: Identity, route: Route, rid: str, target: str, reason: str
    ) -> None:
        """Record a denied access in the credential's own tenant; a failure to record is logged."""
        entry = r.AuditRecord(
            action=f"http.{route.operation_id}",
            target=target,
            outcome="denied",
            detail={"reason": reason, "method": route.method, "path": route.path},
        )
        try:
            await self.registry.call(
                entry,
                tenant=identity.tenant,
                principal=identity.principal,
                request_id=rid,
            )
        except FlowmeshError as exc:
            log.warning("audit.denied_not_recorded", error=exc.detail, reason=reason)
