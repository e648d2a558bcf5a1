"""Registry settings: read once from ``FLOWMESH_REGISTRY_*`` (and NATS_URL / DATABASE_URL)."""

from __future__ import annotations

from flowmesh_registry.validate import Limits
from flowmesh_shared.jetstream import StreamLimits
from flowmesh_shared.settings import CommonSettings

ENV_PREFIX = "FLOWMESH_REGISTRY"


class RegistrySettings(CommonSettings, frozen=True, kw_only=True):
    #: The schema owner's DSN: migrations run as this user.
    database_url: str = "postgresql://postgres@127.0.0.1:5432/flowmesh"
    #: The runtime role: owns nothing, no BYPASSRLS; created by migrations if missing.
    runtime_role: str = "flowmesh_registry"
    #: How the runtime role connects; empty means database_url with the user replaced.
    runtime_database_url: str = ""
    runtime_password: str = ""
    migrate_on_start: bool = True
    pool_min_size: int = 2
    pool_max_size: int = 10
    http_port: int = 8081
    rpc_max_in_flight: int = 64
    outbox_poll_interval: float = 1.0
    max_definition_bytes: int = 256 * 1024
    max_nodes: int = 500
    max_edges: int = 2000
    streams: StreamLimits = StreamLimits()

    @property
    def limits(self) -> Limits:
        return Limits(
            max_nodes=self.max_nodes, max_edges=self.max_edges, max_bytes=self.max_definition_bytes
        )
