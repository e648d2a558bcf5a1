"""Who is calling: API keys (verified by the registry, cached briefly), JWTs, the admin token.

- ``Authorization: Bearer fm_<tenant>_<secret>``: an API key. The registry verifies it;
  the answer is cached for ``key_cache_seconds`` (a revoked key stops working within that).
- ``Authorization: Bearer <header.payload.signature>``: a JWT, HS256 with the shared secret
  or RS256/ES256 with the configured public keys. The algorithm must match the kind of key
  configured for it (no algorithm confusion); ``none`` is never accepted; ``exp`` is
  required; claims ``tenant``, ``sub`` and ``roles``.
- The platform admin token, for ``/api/v1/admin/*`` only.
- A console session (:mod:`flowmesh_gateway.sessions`): the key it was signed in with,
  checked again by id as often as a bearer key is (a revoked key's sessions stop within
  ``key_cache_seconds``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from flowmesh_proto import registry as r
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.ids import is_tenant_id
from flowmesh_proto.registry import ROLES
from flowmesh_shared.errors import FlowmeshError, RemoteError
from flowmesh_shared.rpc import RpcClient

GATEWAY_PRINCIPAL = "service:gateway"
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
ASYMMETRIC = ("RS256", "ES256")


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated caller: the tenant it belongs to, its principal and its role."""

    tenant: str
    principal: str
    role: str
    credential: str  # what rate limits count against (the key id, or the JWT subject)

    def allows(self, needed: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[needed]


def unauthenticated(detail: str) -> FlowmeshError:
    return FlowmeshError(ErrorCode.UNAUTHENTICATED, detail)


def bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or 401."""
    if not header:
        raise unauthenticated("credentials are required: Authorization: Bearer <token>")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 8192:
        raise unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token


class JwtVerifier:
    def __init__(
        self,
        *,
        hs256_secret: str,
        public_keys: list[Any],
        audience: str,
        issuer: str,
        leeway: float,
    ) -> None:
        self.hs256_secret = hs256_secret
        self.public_keys = public_keys
        self.audience = audience or None
        self.issuer = issuer or None
        self.leeway = leeway

    @classmethod
    def from_files(cls, files: list[str], **kwargs: Any) -> JwtVerifier:
        keys = [load_pem_public_key(Path(f).read_bytes()) for f in files if f]
        return cls(public_keys=keys, **kwargs)

    def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise unauthenticated("the token is not a JWT") from exc
        algorithm = header.get("alg")
        if algorithm == "HS256" and self.hs256_secret:
            candidates: list[Any] = [self.hs256_secret]
        elif algorithm in ASYMMETRIC and (candidates := self._public_keys_for(algorithm)):
            pass
        else:
            raise unauthenticated(f"JWT algorithm {algorithm!r} is not accepted")
        claims = self._decode(token, algorithm, candidates)
        return _identity_from_claims(claims)

    def _public_keys_for(self, algorithm: str) -> list[Any]:
        """Only keys of the algorithm's own kind: an RSA key never checks an ES256 token."""
        kind = RSAPublicKey if algorithm == "RS256" else EllipticCurvePublicKey
        return [key for key in self.public_keys if isinstance(key, kind)]

    def _decode(self, token: str, algorithm: str, keys: list[Any]) -> dict[str, Any]:
        failure: jwt.PyJWTError | None = None
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway,
                    options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
                )
                return claims
            except jwt.InvalidSignatureError as exc:
                failure = exc  # maybe another key signed it
            except jwt.PyJWTError as exc:
                raise unauthenticated(f"the token is not valid: {exc}") from exc
        raise unauthenticated(f"the token is not valid: {failure}")


def _identity_from_claims(claims: dict[str, Any]) -> Identity:
    tenant, subject, roles = claims.get("tenant"), claims.get("sub"), claims.get("roles")
    if not isinstance(tenant, str) or not is_tenant_id(tenant):
        raise unauthenticated("the token's 'tenant' claim is missing or not a tenant id")
    if not isinstance(subject, str) or not subject or len(subject) > 200 or ":" in subject:
        raise unauthenticated("the token's 'sub' claim is missing or not valid")
    if isinstance(roles, str):
        roles = [roles]
    known = [role for role in roles or [] if isinstance(role, str) and role in ROLE_RANK]
    if not known:
        raise unauthenticated("the token's 'roles' claim names no known role")
    role = max(known, key=ROLE_RANK.__getitem__)
    return Identity(
        tenant=tenant, principal=f"user:{tenant}:{subject}", role=role, credential=f"sub:{subject}"
    )


def _key_identity(who: r.ApiKeyIdentity) -> Identity:
    return Identity(
        tenant=who.tenant,
        principal=f"key:{who.tenant}:{who.key_id}",
        role=who.role,
        credential=f"key:{who.key_id}",
    )


class KeyCache:
    """Verified API keys, by digest, for a few seconds."""

    def __init__(self, ttl: float, max_entries: int = 50_000) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: dict[bytes, tuple[float, Identity]] = {}

    def get(self, digest: bytes, now: float) -> Identity | None:
        found = self._entries.get(digest)
        if found is None or found[0] <= now:
            return None
        return found[1]

    def put(self, digest: bytes, identity: Identity, now: float) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[digest] = (now + self.ttl, identity)


class Authenticator:
    def __init__(
        self, registry: RpcClient, jwts: JwtVerifier, keys: KeyCache, admin_token: str
    ) -> None:
        self.registry, self.jwts, self.keys = registry, jwts, keys
        self.admin_token = admin_token

    async def identify(self, header: str | None) -> Identity:
        token = bearer(header)
        if token.startswith("fm_"):
            return await self.api_key(token)
        if token.count(".") == 2:
            return self.jwts.verify(token)
        raise unauthenticated("the token is neither an API key nor a JWT")

    async def api_key(self, key: str) -> Identity:
        digest = hashlib.sha256(key.encode()).digest()
        now = time.monotonic()
        cached = self.keys.get(digest, now)
        if cached is not None:
            return cached
        try:
            who = await self.registry.call(r.ApiKeyVerify(key=key), principal=GATEWAY_PRINCIPAL)
        except RemoteError as exc:
            if exc.code is ErrorCode.UNAUTHENTICATED:
                raise unauthenticated("the API key is not valid") from exc
            raise
        identity = _key_identity(who)
        self.keys.put(digest, identity, now)
        return identity

    async def key_by_id(self, tenant: str, key_id: str) -> Identity:
        """Who the key ``key_id`` of ``tenant`` is now (a console session's key), or 401."""
        digest = hashlib.sha256(f"id:{tenant}:{key_id}".encode()).digest()
        now = time.monotonic()
        cached = self.keys.get(digest, now)
        if cached is not None:
            return cached
        try:
            who = await self.registry.call(
                r.ApiKeyCheck(id=key_id), tenant=tenant, principal=GATEWAY_PRINCIPAL
            )
        except RemoteError as exc:
            if exc.code is ErrorCode.UNAUTHENTICATED:
                raise unauthenticated("the console session is not valid") from exc
            raise
        identity = _key_identity(who)
        self.keys.put(digest, identity, now)
        return identity

    def is_admin(self, header: str | None) -> bool:
        """Whether the header carries the platform admin token (constant-time comparison)."""
        if not self.admin_token:
            return False
        try:
            token = bearer(header)
        except FlowmeshError:
            return False
        return hmac.compare_digest(token.encode(), self.admin_token.encode())
