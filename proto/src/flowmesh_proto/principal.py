"""Who is asking: the ``Fm-Principal`` header, as text ``<kind>:<tenant or scope>:<id>``.

- ``key:<tenant>:<key id>`` and ``user:<tenant>:<subject>`` belong to one tenant;
- ``service:<name>`` is one of Flowmesh's own services, trusted for any tenant;
- ``platform:<name>`` is a platform admin: it manages tenants only.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from flowmesh_proto.ids import is_tenant_id

PrincipalKind = Literal["key", "user", "service", "platform"]


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    kind: PrincipalKind
    name: str
    tenant: str | None = None

    def __str__(self) -> str:
        if self.tenant is not None:
            return f"{self.kind}:{self.tenant}:{self.name}"
        return f"{self.kind}:{self.name}"

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    @property
    def is_platform(self) -> bool:
        return self.kind == "platform"


def parse_principal(text: str | None) -> Principal | None:
    """Parse the header; None when absent or malformed (the caller refuses it)."""
    if not text or len(text) > 300:
        return None
    kind, _, rest = text.partition(":")
    if kind in ("service", "platform"):
        return Principal(kind=kind, name=rest) if rest else None  # type: ignore[arg-type]
    if kind in ("key", "user"):
        tenant, _, name = rest.partition(":")
        if is_tenant_id(tenant) and name:
            return Principal(kind=kind, tenant=tenant, name=name)  # type: ignore[arg-type]
    return None
