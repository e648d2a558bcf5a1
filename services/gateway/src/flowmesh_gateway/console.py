"""Signing in to the console and out, and who a session cookie is (DESIGN section 14).

``POST /console/session`` takes ``{"key"}`` in its body and checks it exactly as a bearer
key is checked (:meth:`Authenticator.api_key`). Every sign-in, good or bad, takes a token
from the client address's sign-in bucket (429 past it, before the key is looked at); a bad
key answers the same 401 whatever was wrong, counts as a failed authentication of the
address and is audited in the tenant the key names (when it names one). The key itself is
never logged, stored or answered.

A request with ``Authorization`` uses it; one with only the session cookie is the session's
key (its principal, role and tenant), and a change (POST, PUT, PATCH, DELETE) needs
``X-CSRF-Token`` to be the session's token (403 ``CSRF_TOKEN_INVALID``).
"""

from __future__ import annotations

import time
from typing import cast

import structlog
from aiohttp import web

from flowmesh_gateway.auth import GATEWAY_PRINCIPAL, Authenticator, Identity, unauthenticated
from flowmesh_gateway.ratelimit import RateLimited, RateLimiter
from flowmesh_gateway.session_store import Sessions
from flowmesh_gateway.sessions import (
    CHANGES,
    COOKIE,
    CSRF_HEADER,
    Session,
    csrf_holds,
    host_is_local,
)
from flowmesh_proto import http as h
from flowmesh_proto import registry as r
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.ids import is_tenant_id
from flowmesh_proto.registry import Role
from flowmesh_shared.errors import FlowmeshError
from flowmesh_shared.rpc import RpcClient

log = structlog.get_logger("flowmesh.gateway.console")

#: The one answer to a bad key, whatever was wrong with it.
BAD_KEY = "the API key is not valid"
NO_SESSION = "no valid console session: sign in again"


def client_address(request: web.Request, trust_forwarded: bool) -> str:
    """The client's address: behind a trusted proxy, the last entry of X-Forwarded-For
    (the one the proxy added; the entries before it are whatever the client sent, so the
    first would let a client name any address and escape its per-address limits)."""
    if trust_forwarded and "X-Forwarded-For" in request.headers:
        return request.headers["X-Forwarded-For"].split(",")[-1].strip() or "unknown"
    return request.remote or "unknown"


def tenant_named_by(key: str) -> str | None:
    """The tenant an ``fm_<tenant>_<secret>`` key names, if it names a valid tenant id."""
    if not key.startswith("fm_") or len(key) > 200:
        return None
    tenant, sep, _ = key[3:].partition("_")
    return tenant if sep and is_tenant_id(tenant) else None


class Console:
    """Console sessions over HTTP: sign-in, the session of a request, sign-out."""

    def __init__(
        self,
        sessions: Sessions,
        auth: Authenticator,
        registry: RpcClient,
        *,
        sign_ins: RateLimiter,
        auth_failures: RateLimiter,
        trust_forwarded: bool,
    ) -> None:
        self.sessions, self.auth, self.registry = sessions, auth, registry
        self.sign_ins, self.auth_failures = sign_ins, auth_failures
        self.trust_forwarded = trust_forwarded

    def _address(self, request: web.Request) -> str:
        return client_address(request, self.trust_forwarded)

    def count_failure(self, request: web.Request) -> None:
        """A failed authentication from the request's address (429 past the budget)."""
        decision = self.auth_failures.take(self._address(request), time.monotonic())
        if not decision.allowed:
            raise RateLimited(decision, "failed authentications from this address")

    async def sign_in(self, request: web.Request, key: str, rid: str) -> tuple[str, Session]:
        """A new session for ``key`` (its id and what is kept), or 401/429."""
        try:
            identity = await self.auth.api_key(key) if key.startswith("fm_") else None
        except FlowmeshError as exc:
            if exc.code is not ErrorCode.UNAUTHENTICATED:
                raise
            identity = None
        if identity is None:
            await self._refused(request, key, rid)
            raise unauthenticated(BAD_KEY)
        key_id = identity.credential.removeprefix("key:")
        session_id, session = await self.sessions.create(
            identity.tenant, key_id, identity.role, time.time()
        )
        await self._audit(identity.tenant, identity.principal, rid, "success", {})
        return session_id, session

    def take_sign_in(self, request: web.Request) -> None:
        """One sign-in attempt from the request's address (429 past the budget)."""
        decision = self.sign_ins.take(self._address(request), time.monotonic())
        if not decision.allowed:
            raise RateLimited(decision, "console sign-ins from this address")

    async def _refused(self, request: web.Request, key: str, rid: str) -> None:
        address = self._address(request)
        log.info("console.sign_in_refused", address=address)
        tenant = tenant_named_by(key)
        if tenant is not None:
            detail = {"reason": "UNAUTHENTICATED", "address": address[:64]}
            await self._audit(tenant, GATEWAY_PRINCIPAL, rid, "denied", detail)
        self.count_failure(request)

    async def _audit(
        self, tenant: str, principal: str, rid: str, outcome: str, detail: dict[str, str]
    ) -> None:
        entry = r.AuditRecord(
            action="console.sign_in",
            target="console:session",
            outcome="success" if outcome == "success" else "denied",
            detail=detail,
        )
        try:
            await self.registry.call(entry, tenant=tenant, principal=principal, request_id=rid)
        except FlowmeshError as exc:
            log.warning("audit.sign_in_not_recorded", error=exc.detail, outcome=outcome)

    async def current(self, request: web.Request) -> tuple[str, Session, Identity]:
        """The request's live session (its id, what is kept, its key now), or 401."""
        session_id = request.cookies.get(COOKIE, "")
        session = await self.sessions.find(session_id, time.time()) if session_id else None
        if session is None:
            self.count_failure(request)
            raise unauthenticated(NO_SESSION)
        try:
            identity = await self.auth.key_by_id(session.tenant, session.key_id)
        except FlowmeshError as exc:
            if exc.code is ErrorCode.UNAUTHENTICATED:
                await self.sessions.revoke(session_id)
                self.count_failure(request)
            raise
        return session_id, session, identity

    async def still_signed_in(self, request: web.Request) -> bool:
        """Whether the credential a stream was opened with still lets it in: its bearer
        header, or its session cookie (looked at, not used: a stream does not keep an idle
        session alive). Asked now and then by an open stream, so sign-out, an expired
        session, a revoked key or an expired JWT end it; an unanswered check keeps it."""
        header = request.headers.get("Authorization")
        try:
            if header is None and COOKIE in request.cookies:
                found = await self.sessions.find(request.cookies[COOKIE], time.time(), use=False)
                if found is None:
                    return False
                await self.auth.key_by_id(found.tenant, found.key_id)
            else:
                await self.auth.identify(header)
        except FlowmeshError as exc:
            if exc.code is ErrorCode.UNAUTHENTICATED:
                return False
            log.warning("stream.credential_unchecked", error=exc.detail)
        return True

    async def identify(self, request: web.Request) -> Identity:
        """The caller of an API request that carries the cookie and no Authorization."""
        _, session, identity = await self.current(request)
        if request.method in CHANGES:
            check_csrf(request, session)
        return identity

    def answer(self, session: Session, role: str) -> h.ConsoleSession:
        return h.ConsoleSession(
            tenant=session.tenant,
            role=cast(Role, role),  # a role the registry answered
            csrf_token=session.csrf_token,
            key_id=session.key_id,
            expires_in=self.sessions.policy.expires_in(session, time.time()),
        )


def check_csrf(request: web.Request, session: Session) -> None:
    if not csrf_holds(session, request.headers.get(CSRF_HEADER)):
        raise FlowmeshError(
            ErrorCode.CSRF_TOKEN_INVALID,
            f"a change made with the console session needs the {CSRF_HEADER} header",
        )


#: Headers a reverse proxy adds: the browser is not on this machine, whatever Host says.
FORWARDING = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host")


def cookie_is_secure(request: web.Request) -> bool:
    """``Secure`` unless a browser on this machine reached the gateway directly: a proxy in
    front may pass its upstream's Host (``127.0.0.1:8080``) for a remote browser on HTTPS."""
    forwarded = any(name in request.headers for name in FORWARDING)
    return forwarded or not host_is_local(request.host)


def set_cookie(request: web.Request, response: web.StreamResponse, session_id: str) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=cookie_is_secure(request),
    )


def clear_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(
        COOKIE, path="/", httponly=True, samesite="Strict", secure=cookie_is_secure(request)
    )
