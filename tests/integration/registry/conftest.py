"""Helpers of the registry tests (the fixtures live in ``tests/integration/conftest.py``)."""

from tests.integration.harness import (
    GATEWAY,
    PLATFORM,
    Api,
    Registry,
    TenantHandle,
    new_tenant,
    raw_call,
    simple_definition,
    unique,
)

__all__ = [
    "GATEWAY",
    "PLATFORM",
    "Api",
    "Registry",
    "TenantHandle",
    "new_tenant",
    "raw_call",
    "simple_definition",
    "unique",
]
