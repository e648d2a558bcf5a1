"""OAuth2 tokens a connector got, kept until shortly before they expire. Pure but for
the clock, which callers pass in (``now``, monotonic seconds).

Tokens are cached per (tenant, connector, connector version, and a digest of what the
token is for: the connector's base URL, hosts and auth, so a connector deleted and made
again, back at version 1, never gets the old one's token), one cache per executor
process, until :data:`EXPIRY_MARGIN` seconds before ``expires_in`` runs out
(:data:`DEFAULT_LIFETIME` when the answer gives none); at most :data:`MAX_TOKENS` are kept,
the least recently stored dropped first. Concurrent steps that find no token may each fetch
one. A token its server refuses (401) is dropped (:meth:`TokenCache.drop`), and a step that
sent one from the cache asks for a new token and sends once more.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_LIFETIME",
    "EXPIRY_MARGIN",
    "MAX_TOKENS",
    "TokenCache",
    "TokenKey",
    "kept_until",
]

#: Seconds before a token's expiry it stops being used.
EXPIRY_MARGIN = 30.0
#: Seconds a token whose answer gives no ``expires_in`` is kept.
DEFAULT_LIFETIME = 300.0
#: Tokens one executor process keeps at most.
MAX_TOKENS = 1000

#: (tenant, connector, connector version, digest of its base URL, hosts and auth).
TokenKey = tuple[str, str, int, bytes]


def kept_until(now: float, expires_in: float | None) -> float:
    """Until when (on the clock of ``now``) a token given ``now`` may be used. Pure."""
    lifetime = DEFAULT_LIFETIME if expires_in is None else expires_in
    return now + max(0.0, lifetime - EXPIRY_MARGIN)


@dataclass(slots=True)
class TokenCache:
    """Tokens by (tenant, connector, version), each until shortly before its expiry."""

    max_tokens: int = MAX_TOKENS
    _tokens: OrderedDict[TokenKey, tuple[str, float]] = field(default_factory=OrderedDict)

    def get(self, key: TokenKey, now: float) -> str | None:
        found = self._tokens.get(key)
        if found is None:
            return None
        if found[1] <= now:
            del self._tokens[key]
            return None
        return found[0]

    def put(self, key: TokenKey, token: str, until: float, now: float) -> None:
        if until <= now:
            return
        self._tokens[key] = (token, until)
        self._tokens.move_to_end(key)
        while len(self._tokens) > self.max_tokens:
            self._tokens.popitem(last=False)

    def drop(self, key: TokenKey, token: str) -> None:
        """Forget ``token`` (refused by its server); a newer token under ``key`` stays."""
        found = self._tokens.get(key)
        if found is not None and found[0] == token:
            del self._tokens[key]

    def __len__(self) -> int:
        return len(self._tokens)
