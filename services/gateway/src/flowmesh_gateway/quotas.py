"""Rate limits and concurrent holds shared by every gateway replica (DESIGN section 12).

- **Rate limits**: one token bucket per tenant and per credential in the shared store
  (:func:`~flowmesh_gateway.ratelimit.draw`). A replica draws up to
  ``shared_rate_chunk`` tokens at once (never more than a twentieth of the burst, nor more
  than a second's refill) and spends them for up to a second, so most requests cost no
  round trip; tokens drawn are gone from the shared bucket, so the replicas together never
  admit more than the one bucket allows (at most a chunk per replica may go unused).
- **Holds** (open SSE streams, ``?wait`` executes): counted per credential and per tenant
  across replicas in one value per tenant (:mod:`flowmesh_gateway.holds`), updated with
  compare-and-set. A replica renews its part every third of ``hold_lease_seconds``; a
  replica that dies stops renewing and its holds count for nothing one lease later. A
  hold is released on every exit path: the local count at once, the shared value right after.
- **When the store cannot be reached** (or does not answer within
  ``quota_store_timeout_seconds``) a replica falls back to limits of its own: the same
  limits counted in this process only (as before replicas shared them), never no limit and
  never a refusal caused by the store. The store is a NATS key-value bucket, so a store
  that is down means JetStream is down, and then the streams and runs these limits protect
  cannot be served anyway: failing closed would add nothing but a second outage signal.
  ``flowmesh_quota_store_unavailable_total`` counts each fallback.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from typing import TypeVar

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter

from flowmesh_gateway import holds as h
from flowmesh_gateway.counters import Counters, StoreUnavailable
from flowmesh_gateway.ratelimit import Decision, Drawn, RateLimiter, SharedBucket, draw
from flowmesh_gateway.settings import GatewaySettings
from flowmesh_proto.errors import ErrorCode
from flowmesh_shared.errors import FlowmeshError

log = structlog.get_logger("flowmesh.gateway.quotas")

T = TypeVar("T")

#: Seconds a replica may spend tokens it drew from a shared bucket.
SPARE_SECONDS = 1.0
#: Compare-and-set attempts before a contended store counts as unavailable.
ATTEMPTS = 8
#: ``Retry-After`` of a refused hold: streams are long; a second later is too eager.
HOLD_RETRY_AFTER = 5

_bucket_decoder = msgspec.json.Decoder(SharedBucket)
_encoder = msgspec.json.Encoder()


class QuotaExceeded(FlowmeshError):
    """Too many at once; try again later."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(ErrorCode.RATE_LIMITED, detail)
        self.headers = {"Retry-After": str(max(1, retry_after))}


class QuotaMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refused = Counter(
            "flowmesh_quota_refused",
            "Requests refused by a quota (holds: credential or tenant; queued_runs)",
            ["quota"],
            registry=registry,
        )
        self.store_unavailable = Counter(
            "flowmesh_quota_store_unavailable",
            "Quota decisions taken with this replica's own counts: the store did not answer",
            registry=registry,
        )


def digest(tenant: str, credential: str) -> str:
    """A credential as the shared store names it: never the credential itself."""
    return hashlib.sha256(f"{tenant}\0{credential}".encode()).hexdigest()[:32]


class Spare(msgspec.Struct):
    """Tokens a replica drew and may spend until ``until`` (or, ``refill_at`` set, a
    bucket it found empty: refused locally until ``until``, refilled at ``refill_at``)."""

    tokens: int
    until: float
    refill_at: float | None = None


class Quotas:
    """This replica's side of the shared rate limits and holds."""

    def __init__(
        self,
        counters: Counters,
        settings: GatewaySettings,
        registry: CollectorRegistry,
        *,
        replica: str,
    ) -> None:
        self.counters = counters
        self.replica = replica
        self.lease = settings.hold_lease_seconds
        self.timeout = settings.quota_store_timeout_seconds
        self.chunk = settings.shared_rate_chunk
        self.metrics = QuotaMetrics(registry)
        self._spare: OrderedDict[str, Spare] = OrderedDict()
        self._mine: dict[str, dict[str, int]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._rate_locks: OrderedDict[str, asyncio.Lock] = OrderedDict()
        self._unsaid: set[str] = set()  # tenants whose part the store has not heard yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    # --- rate limits ---

    async def take(self, key: str, rate: float, burst: int, fallback: RateLimiter) -> Decision:
        """One request against the shared bucket ``key`` (``rate``/s, ``burst``)."""
        known = self._known(key)
        if known is not None:
            return known
        # One draw per key at a time in this replica: the others wait for its tokens rather
        # than contend for the same value (compare-and-set conflicts are between replicas).
        async with self._rate_lock(key):
            known = self._known(key)
            if known is not None:
                return known
            want = max(1, min(self.chunk, burst // 20, int(rate)))
            try:
                drawn = await self._draw(key, rate, burst, want)
            except StoreUnavailable as exc:
                self._fell_back("rate", exc)
                return fallback.take(key, time.monotonic(), rate=rate, burst=burst)
        now = time.monotonic()
        if drawn.granted == 0:  # none before retry_after: no replica can refill it sooner
            until = now + min(drawn.retry_after, SPARE_SECONDS)
            self._remember(key, Spare(0, until, now + drawn.retry_after))
            return Decision(allowed=False, retry_after=drawn.retry_after)
        self._remember(key, Spare(drawn.granted - 1, now + SPARE_SECONDS))
        return Decision(allowed=True)

    def _known(self, key: str) -> Decision | None:
        """The decision this replica can take alone: a token it drew earlier and may still
        spend, or a bucket it found empty a moment ago; None: ask the store."""
        spare = self._spare.get(key)
        now = time.monotonic()
        if spare is None or spare.until <= now:
            return None
        if spare.tokens > 0:
            spare.tokens -= 1
            return Decision(allowed=True)
        if spare.refill_at is not None:
            return Decision(allowed=False, retry_after=spare.refill_at - now)
        return None

    def _remember(self, key: str, spare: Spare) -> None:
        self._spare[key] = spare
        self._spare.move_to_end(key)
        if len(self._spare) > 100_000:
            self._spare.popitem(last=False)

    def _rate_lock(self, key: str) -> asyncio.Lock:
        lock = self._rate_locks.get(key)
        if lock is None:
            lock = self._rate_locks[key] = asyncio.Lock()
            if len(self._rate_locks) > 100_000:
                self._rate_locks.popitem(last=False)
        else:
            self._rate_locks.move_to_end(key)
        return lock

    def _spend(self, key: str) -> bool:
        """Spend a token this replica drew earlier, if it has one still good."""
        spare = self._spare.get(key)
        if spare is None or spare.tokens <= 0 or spare.until <= time.monotonic():
            return False
        spare.tokens -= 1
        return True

    async def _draw(self, key: str, rate: float, burst: int, want: int) -> Drawn:
        for _ in range(ATTEMPTS):
            raw, revision = await self._io(self.counters.read(key))
            bucket = _decode_bucket(raw)
            drawn = draw(bucket, rate=rate, burst=burst, now=time.time(), want=want)
            if drawn.granted == 0:
                return drawn
            if await self._io(self.counters.write(key, _encoder.encode(drawn.bucket), revision)):
                return drawn
        raise StoreUnavailable(f"the quota store's {key} stayed contended")

    # --- holds ---

    @asynccontextmanager
    async def hold(self, tenant: str, credential: str, limits: h.HoldLimits) -> AsyncIterator[None]:
        """One concurrent hold of ``credential`` of ``tenant`` for the block's duration;
        429 ``RATE_LIMITED`` past ``limits``. Released however the block ends."""
        who = digest(tenant, credential)
        await self._acquire(tenant, who, limits)
        try:
            yield
        finally:
            self._release(tenant, who)

    def holding(self, tenant: str) -> int:
        """This replica's holds of ``tenant``."""
        return sum(self._mine.get(tenant, {}).values())

    async def _acquire(self, tenant: str, who: str, limits: h.HoldLimits) -> None:
        alone = h.TenantHolds()
        self._refuse_unless(h.judge(alone, self.replica, self._counts(tenant), who, limits))
        async with self._lock(tenant):
            try:
                for _ in range(ATTEMPTS):
                    raw, revision = await self._io(self.counters.read(_holds_key(tenant)))
                    now = time.time()
                    shared = h.live(h.decode(raw), now, self.lease)
                    mine = self._counts(tenant)
                    self._refuse_unless(h.judge(shared, self.replica, mine, who, limits))
                    mine[who] = mine.get(who, 0) + 1
                    value = h.encode(h.with_mine(shared, self.replica, mine, now))
                    if await self._io(self.counters.write(_holds_key(tenant), value, revision)):
                        self._count(tenant, who, 1)
                        return
                raise StoreUnavailable(f"the quota store's holds of {tenant} stayed contended")
            except StoreUnavailable as exc:
                self._fell_back("holds", exc)
                mine = self._counts(tenant)
                self._refuse_unless(h.judge(alone, self.replica, mine, who, limits))
                self._count(tenant, who, 1)
                self._unsaid.add(tenant)

    def _refuse_unless(self, verdict: h.Verdict) -> None:
        if verdict.allowed:
            return
        self.metrics.refused.labels(verdict.refused_by).inc()
        raise QuotaExceeded(
            f"too many open streams and waits for this {verdict.refused_by}: close one first",
            HOLD_RETRY_AFTER,
        )

    def _release(self, tenant: str, who: str) -> None:
        self._count(tenant, who, -1)
        self._unsaid.add(tenant)
        task = asyncio.get_running_loop().create_task(self._say(tenant))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _counts(self, tenant: str) -> dict[str, int]:
        """A copy of this replica's holds of ``tenant`` by credential."""
        return dict(self._mine.get(tenant, {}))

    def _count(self, tenant: str, who: str, change: int) -> None:
        mine = self._mine.setdefault(tenant, {})
        left = mine.get(who, 0) + change
        if left > 0:
            mine[who] = left
        else:
            mine.pop(who, None)
        if not mine:
            self._mine.pop(tenant, None)

    async def _say(self, tenant: str) -> None:
        """Write this replica's part of ``tenant``'s holds as it is now (renewing its lease)."""
        async with self._lock(tenant):
            try:
                for _ in range(ATTEMPTS):
                    raw, revision = await self._io(self.counters.read(_holds_key(tenant)))
                    now = time.time()
                    mine = self._counts(tenant)
                    shared = h.live(h.decode(raw), now, self.lease)
                    if not mine and self.replica not in shared.replicas:
                        break  # nothing of ours to say
                    value = h.encode(h.with_mine(shared, self.replica, mine, now))
                    if await self._io(self.counters.write(_holds_key(tenant), value, revision)):
                        break
                else:
                    return
            except StoreUnavailable as exc:
                log.warning("quota.holds_unsaid", tenant=tenant, error=exc.detail)
                return
            self._unsaid.discard(tenant)
        lock = self._locks.get(tenant)
        if tenant not in self._mine and lock is not None and not lock.locked():
            self._locks.pop(tenant, None)

    # --- lifecycle ---

    def start(self) -> None:
        """Renew this replica's leases every third of ``hold_lease_seconds``."""
        self._heartbeat = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            for tenant in set(self._mine) | set(self._unsaid):
                await self._say(tenant)

    async def close(self) -> None:
        """Stop renewing; say what is held now (nothing, once every stream has ended)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await self._heartbeat
        for tenant in set(self._mine) | set(self._unsaid):
            await self._say(tenant)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.timeout * ATTEMPTS)

    # --- plumbing ---

    def _lock(self, tenant: str) -> asyncio.Lock:
        lock = self._locks.get(tenant)
        if lock is None:
            lock = self._locks[tenant] = asyncio.Lock()
        return lock

    async def _io(self, operation: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await operation
        except TimeoutError as exc:
            raise StoreUnavailable("the quota store did not answer in time") from exc

    def _fell_back(self, what: str, exc: StoreUnavailable) -> None:
        self.metrics.store_unavailable.inc()
        log.warning("quota.store_unavailable", what=what, error=exc.detail)


def _decode_bucket(raw: bytes | None) -> SharedBucket | None:
    if not raw:
        return None
    try:
        return _bucket_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # unreadable: a full bucket, rewritten


def _holds_key(tenant: str) -> str:
    return f"holds.{tenant}"


def rate_key(kind: str, name: str) -> str:
    """``rate.tenant.<t>`` or ``rate.credential.<digest>``."""
    return f"rate.{kind}.{name}"
