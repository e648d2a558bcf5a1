"""Browser tests: the console in Debian's Chromium, driven by Playwright, against a real
gateway and registry on the session's NATS and PostgreSQL."""

from tests.integration.gateway.conftest import jwt_keys
from tests.integration.harness import registry, registry_settings

__all__ = ["jwt_keys", "registry", "registry_settings"]
