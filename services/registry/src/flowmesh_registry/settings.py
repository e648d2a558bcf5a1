"""Registry settings: read once from ``FLOWMESH_REGISTRY_*`` (and NATS_URL / DATABASE_URL)."""

from __future__ import annotations

from datetime import timedelta

from flowmesh_registry.secretbox import Keyring
from flowmesh_registry.validate import Limits
from flowmesh_shared.jetstream import StreamLimits
from flowmesh_shared.settings import CommonSettings

ENV_PREFIX = "FLOWMESH_REGISTRY"

#: Settings whose values a repr masks: settings may end up in a log line or a traceback.
MASKED = frozenset({"runtime_password", "secrets_key", "secrets_old_keys"})


class RegistrySettings(CommonSettings, frozen=True, kw_only=True):
    #: The schema owner's DSN: migrations run as this user.
    database_url: str = "postgresql://postgres@127.0.0.1:5432/flowmesh"
    #: The runtime role: owns nothing, no BYPASSRLS; created by migrations if missing.
    runtime_role: str = "flowmesh_registry"
    #: How the runtime role connects; empty means database_url with the user replaced.
    runtime_database_url: str = ""
    #: A password set on the runtime role by migrations; empty leaves it as it is.
    runtime_password: str = ""
    #: Apply missing migrations (and create the runtime role) at start.
    migrate_on_start: bool = True
    #: Connections the pool keeps open at least.
    pool_min_size: int = 2
    #: Connections the pool opens at most.
    pool_max_size: int = 10
    #: The port of /healthz, /readyz and /metrics (0 picks a free one).
    http_port: int = 8081
    #: Registry requests one process handles at once; more wait their turn.
    rpc_max_in_flight: int = 64
    #: Seconds between outbox polls (it also wakes on ``NOTIFY``; polling covers a lost one).
    outbox_poll_interval: float = 1.0
    #: The largest workflow definition (bytes of JSON); larger is 413 PAYLOAD_TOO_LARGE.
    max_definition_bytes: int = 256 * 1024
    #: Nodes one workflow may have.
    max_nodes: int = 500
    #: Edges one workflow may have.
    max_edges: int = 2000
    #: How deep CEL comprehensions may nest in one expression (422 EXPRESSION_TOO_COSTLY).
    expression_max_nesting: int = 2
    #: Items one literal list or map in an expression may have.
    expression_max_literal_items: int = 512
    #: ``+`` (string and list building) one expression may hold.
    expression_max_builds: int = 64
    #: Cost units an expression may need on the least data; keep it equal to the
    #: executors' and schedulers' ``expression_budget``.
    expression_budget: int = 20_000
    #: Retention limits, storage and replicas of the streams and key-value buckets this
    #: service creates, or updates, at start.
    streams: StreamLimits = StreamLimits()
    #: The projection of run events into run history (turn off to run it elsewhere: any
    #: number of registries may project; they share the durable consumer).
    projection_enabled: bool = True
    #: The durable consumer of run events the projecting registries share.
    projection_consumer: str = "registry-projection"
    #: Run events written per batch (one transaction) at most.
    projection_batch_size: int = 500
    #: Run events held in memory at most (delivered, not yet written).
    projection_max_buffered: int = 2000
    #: Seconds before JetStream redelivers an event the projection has not acked.
    projection_ack_wait: float = 60.0
    #: Days run history is kept for a tenant that has no ``run_retention_days`` of its own.
    run_retention_days: int = 30
    #: Seconds between retention sweeps (the first runs a minute after start).
    retention_interval: float = 3600.0
    #: Runs (with their steps) one retention statement deletes at most.
    retention_batch_size: int = 1000
    #: The AES-256 key that seals tenant secrets: base64 of 32 bytes. Empty: the registry
    #: runs, and every secret operation answers 503 UNAVAILABLE.
    secrets_key: str = ""
    #: The id stored with every value sealed by ``secrets_key`` (rotation: give a new key a
    #: new id, and move the old one to ``secrets_old_keys``).
    secrets_key_id: str = "k1"
    #: Keys that only open values they sealed before a rotation: ``id:base64,id:base64``.
    secrets_old_keys: str = ""
    #: How long a webhook's previous secret still verifies signatures after a rotation.
    webhook_secret_grace: timedelta = timedelta(hours=24)
    #: Connectors one tenant may have; one more is 409 CONNECTOR_LIMIT_REACHED.
    max_connectors: int = 1000
    #: Actions of its own one tenant may have; one more is 409 ACTION_LIMIT_REACHED.
    max_actions: int = 1000
    #: Versions one action may have; one more is 409 ACTION_LIMIT_REACHED.
    max_action_versions: int = 1000
    #: Bytes of stored specs (every version of every action) one tenant may hold; past it
    #: a new version is 409 ACTION_LIMIT_REACHED.
    max_action_bytes: int = 256 * 1024 * 1024
    #: The tenant's own actions (distinct name and version) one workflow may name; past it
    #: a node's action is a 422 at ``nodes[i].parameters.action``.
    max_workflow_actions: int = 64
    #: Bytes of specs one page of actions holds at most (a page of large specs is shorter).
    action_page_max_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        self.secrets_keyring  # noqa: B018 - a key that cannot be used stops the start

    def __repr__(self) -> str:
        fields = (
            f"{name}={'***' if name in MASKED and getattr(self, name) else getattr(self, name)!r}"
            for name in self.__struct_fields__
        )
        return f"RegistrySettings({', '.join(fields)})"

    @property
    def secrets_keyring(self) -> Keyring | None:
        """The parsed keys, or None when no key is configured."""
        return Keyring.from_settings(self.secrets_key, self.secrets_key_id, self.secrets_old_keys)

    @property
    def limits(self) -> Limits:
        return Limits(
            max_nodes=self.max_nodes,
            max_edges=self.max_edges,
            max_bytes=self.max_definition_bytes,
            max_comprehension_nesting=self.expression_max_nesting,
            max_literal_items=self.expression_max_literal_items,
            max_builds=self.expression_max_builds,
            expression_budget=self.expression_budget,
            max_tenant_actions=self.max_workflow_actions,
        )
