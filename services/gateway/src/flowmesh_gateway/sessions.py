"""Console sessions (DESIGN section 14): signed in with an API key, held by every replica.

A session id is 256 random bits, sent to the browser once in an ``HttpOnly``,
``SameSite=Strict`` cookie (``Secure`` unless the host is the local machine). The store
(the ``<prefix>_SESSIONS`` key-value bucket, shared by every gateway replica) is keyed by
the SHA-256 of the id, never the id itself, and holds the key's id, never the key: the key
is checked again by id (:class:`flowmesh_proto.registry.ApiKeyCheck`) as often as a
bearer key is, so a revoked key ends its sessions within ``key_cache_seconds``.

Every change made with the cookie carries ``X-CSRF-Token``, the session's own second
random token. A session ends when it is revoked (sign-out), when it has not been used for
``idle`` seconds, or ``lifetime`` seconds after sign-in. Its last use is written at most
once per :attr:`SessionPolicy.touch_every`, so a busy console does not write on every
request.

This module is pure (time is an argument); :mod:`flowmesh_gateway.session_store` keeps
sessions, :mod:`flowmesh_gateway.console` signs in and out.
"""

from __future__ import annotations

import enum
import hashlib
import hmac

import msgspec

COOKIE = "fm_session"
CSRF_HEADER = "X-CSRF-Token"
#: Methods that change something: with the cookie, they need the CSRF token.
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Hosts a browser reaches over plain HTTP on the local machine (no ``Secure`` cookie).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: The longest a session's last use goes unwritten.
MAX_TOUCH_SECONDS = 60.0
#: The longest session id or CSRF token taken from a request (ours are 43 characters).
MAX_TOKEN_LENGTH = 128


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """What the store holds for a session (times are unix seconds)."""

    tenant: str
    key_id: str
    role: str
    csrf_token: str
    created_at: float
    seen_at: float


class Verdict(enum.Enum):
    LIVE = "live"
    TOUCH = "touch"  # live; write its last use now
    EXPIRED = "expired"


class SessionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    idle: float
    lifetime: float

    @property
    def touch_every(self) -> float:
        return min(MAX_TOUCH_SECONDS, self.idle / 2)

    def judge(self, session: Session, now: float) -> Verdict:
        if now - session.seen_at >= self.idle or now - session.created_at >= self.lifetime:
            return Verdict.EXPIRED
        if now - session.seen_at >= self.touch_every:
            return Verdict.TOUCH
        return Verdict.LIVE

    def expires_in(self, session: Session, now: float) -> int:
        """Whole seconds until the session ends if it is not used again."""
        left = min(session.seen_at + self.idle, session.created_at + self.lifetime) - now
        return max(0, round(left))


def session_digest(session_id: str) -> str:
    """The store's key for a session id (the id itself is never stored)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_holds(session: Session, given: str | None) -> bool:
    if not given or len(given) > MAX_TOKEN_LENGTH:
        return False
    return hmac.compare_digest(given.encode(), session.csrf_token.encode())


def host_is_local(host: str) -> bool:
    """Whether a ``Host`` header names the local machine (``[::1]:8080``, ``localhost``)."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host in LOCAL_HOSTS
