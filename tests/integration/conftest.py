"""Fixtures of every integration test: one registry per session, tenants, API helpers."""

from tests.integration.harness import (
    api,
    other_api,
    other_tenant,
    registry,
    registry_settings,
    tenant,
)

__all__ = ["api", "other_api", "other_tenant", "registry", "registry_settings", "tenant"]
