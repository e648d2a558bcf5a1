"""Gateway settings: read once from ``FLOWMESH_GATEWAY_*`` (and NATS_URL)."""

from __future__ import annotations

from datetime import timedelta

from flowmesh_shared.jetstream import StreamLimits
from flowmesh_shared.settings import CommonSettings

ENV_PREFIX = "FLOWMESH_GATEWAY"
#: The fewest characters of the platform admin token and of the HS256 secret (when set).
MIN_SECRET_LENGTH = 32


class GatewaySettings(CommonSettings, frozen=True, kw_only=True):
    #: The API's port; /healthz, /readyz and /metrics are served on it too.
    http_port: int = 8080
    #: The platform admin token for /api/v1/admin/*; empty disables those routes (401).
    #: At least 32 characters: a shorter one stops the start.
    admin_token: str = ""
    #: HS256 shared secret for JWTs; empty refuses HS256 tokens. At least 32 characters: a
    #: shorter one stops the start.
    jwt_hs256_secret: str = ""
    #: PEM files of RS256/ES256 public keys (comma-separated); empty refuses those tokens.
    jwt_public_key_files: list[str] = []
    #: The ``aud`` a JWT must carry; empty checks no audience.
    jwt_audience: str = ""
    #: The ``iss`` a JWT must carry; empty checks no issuer.
    jwt_issuer: str = ""
    #: Seconds of clock skew allowed when checking a JWT's ``exp``, ``nbf`` and ``iat``.
    jwt_leeway_seconds: float = 30.0
    #: How long a verified API key is trusted before asking the registry again (revocation lag).
    key_cache_seconds: float = 5.0
    #: The largest request body (bytes); larger is 413 PAYLOAD_TOO_LARGE. Also the largest
    #: event a tenant's own publisher sends over NATS (larger is refused with 400).
    max_body_bytes: int = 1024 * 1024
    #: Events of tenants' own NATS publishers one gateway stores at once; past it an event
    #: is refused with 503 at once (the publisher sends it again).
    ingress_max_in_flight: int = 256
    #: Of those, events of one tenant; past it that tenant's next is refused with 503 (so a
    #: tenant's flood never holds another tenant's event behind it).
    ingress_tenant_max_in_flight: int = 32
    #: Requests per second a tenant may make (a token bucket per tenant and gateway),
    #: unless the tenant has a limit of its own.
    tenant_rate: float = 200.0
    #: The burst of a tenant's token bucket.
    tenant_burst: int = 400
    #: How long a tenant's own limit (set with PATCH /api/v1/admin/tenants/{id}) is cached.
    tenant_limit_cache_seconds: float = 30.0
    #: Concurrent holds (open SSE streams and ``?wait`` executes) one credential may have,
    #: across every gateway replica; past it, 429 RATE_LIMITED with ``Retry-After``.
    credential_max_holds: int = 64
    #: Concurrent holds a tenant may have across every replica, unless it has a limit of
    #: its own (``max_holds`` of PATCH /api/v1/admin/tenants/{id}).
    tenant_max_holds: int = 256
    #: Runs a tenant may have queued (requested and not yet finished, delayed runs
    #: included) before ``execute`` and ``retry`` answer 429, unless it has a limit of its
    #: own (``max_queued_runs`` of PATCH /api/v1/admin/tenants/{id}).
    tenant_max_queued_runs: int = 10_000
    #: A replica renews its holds in the shared store every third of this; the holds of a
    #: replica that died count for nothing this long after its last renewal.
    hold_lease_seconds: float = 30.0
    #: The most tokens a replica draws from a shared rate-limit bucket at once (also at
    #: most a twentieth of the burst and a second's refill); 1 makes every request ask.
    shared_rate_chunk: int = 10
    #: How long a quota decision waits for the shared store (NATS KV) before this replica
    #: decides with its own counts alone.
    quota_store_timeout_seconds: float = 0.5
    #: Requests per second one credential (API key or JWT subject) may make.
    key_rate: float = 100.0
    #: The burst of a credential's token bucket.
    key_burst: int = 200
    #: Failed authentications (and refused webhook signatures) allowed per client address
    #: per second; past the burst, 429.
    auth_failure_rate: float = 2.0
    #: The burst of a client address's failed-authentication bucket.
    auth_failure_burst: int = 20
    #: Console sign-ins (``POST /console/session``, good keys or bad) allowed per client
    #: address per second; past the burst, 429. A bad key also counts as a failed
    #: authentication.
    console_sign_in_rate: float = 0.5
    #: The burst of a client address's sign-in bucket.
    console_sign_in_burst: int = 10
    #: A console session not used for this many seconds is gone (its last use is written
    #: at most once a minute, so it may end up to a minute sooner).
    console_idle_seconds: float = 1800.0
    #: A console session ends this many seconds after sign-in, however busy.
    console_lifetime_seconds: float = 12 * 3600.0
    #: Trust X-Forwarded-For for the client address, its last entry (only behind a proxy you run).
    trust_forwarded_for: bool = False
    #: Storage and replicas of the buckets the gateway creates if missing (run control,
    #: idempotency keys): ``FLOWMESH_GATEWAY_STREAMS_STORAGE``, ``_REPLICAS`` ...
    streams: StreamLimits = StreamLimits()
    #: The largest run input ``execute`` takes (its JSON, in bytes): larger is 413.
    max_input_bytes: int = 1024 * 1024
    #: The longest ``?wait=`` of ``execute`` (ISO 8601 duration in the query).
    max_wait: timedelta = timedelta(seconds=60)
    #: How far ahead ``execute`` may schedule a run (``delay`` or ``run_at``).
    max_schedule_ahead: timedelta = timedelta(days=366)
    #: How many compiled workflow input schemas are kept.
    input_schema_cache_size: int = 1024
    #: Server-Sent Events (``/runs/{run_id}/events``, ``/events/stream``): a ``: keep-alive``
    #: comment after this many seconds without an event keeps proxies from closing a stream.
    sse_heartbeat_seconds: float = 15.0
    #: A client whose socket does not take a write within this many seconds is dropped.
    sse_write_timeout_seconds: float = 10.0
    #: Bytes of events a client may fall behind (delivered by JetStream, not yet written to
    #: its socket) before it is dropped; it reconnects with ``Last-Event-ID`` and resumes.
    sse_buffer_bytes: int = 4 * 1024 * 1024
    #: How long the stream of a run that has no event yet waits for its first one.
    sse_wait_for_run_seconds: float = 60.0
    #: The stream of a queued run says why it waits (an SSE ``run.waiting``) when it opens
    #: and when the reason changes, looked at every this many seconds while it is queued.
    sse_waiting_seconds: float = 2.0
    #: How long a tenant's queued and running runs (its run-request consumer, read to say
    #: why a queued run waits) are used again: a burst of reads asks JetStream once.
    intake_cache_seconds: float = 1.0
    #: Webhooks: a ``Flowmesh-Timestamp`` further than this from now (either side) is
    #: refused. Accepted requests are remembered for twice this plus a minute (replays).
    webhook_tolerance: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        short_secret_check(self)

    @property
    def max_execute_body_bytes(self) -> int:
        """An ``execute`` body holds the input and a little more (key, version)."""
        return max(self.max_body_bytes, self.max_input_bytes + 64 * 1024)


def short_secret_check(settings: GatewaySettings) -> None:
    """ValueError naming the variable when a credential is set but shorter than
    :data:`MIN_SECRET_LENGTH` (guessable: a platform admin opens every tenant's creation, an
    HS256 secret signs any tenant's tokens)."""
    for field, disabled in (
        ("admin_token", "the admin routes"),
        ("jwt_hs256_secret", "HS256 tokens"),
    ):
        value: str = getattr(settings, field)
        if value and len(value) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"{ENV_PREFIX}_{field.upper()} has {len(value)} characters; it needs at least "
                f"{MIN_SECRET_LENGTH} (or leave it empty to turn {disabled} off)"
            )
