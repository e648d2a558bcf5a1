"""Who a registry operation acts for: the tenant, the actor (principal) and the request."""

from __future__ import annotations

import msgspec


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    actor: str
    request_id: str = ""
