"""Concurrent holds (pure): open SSE streams and ``?wait`` executes, counted across replicas.

One value per tenant, shared by every gateway replica, says how many holds each replica has
for each credential of the tenant, and when that replica last said so. A replica rewrites
its own part whenever its count changes and every third of the lease while it holds
anything; a part older than the lease belongs to a replica that died and counts for
nothing, so a dead gateway's holds are freed one lease after its last heartbeat.

Time is an argument (wall-clock seconds, comparable across hosts): tests use plain numbers.
"""

from __future__ import annotations

import msgspec


class ReplicaHolds(msgspec.Struct, frozen=True):
    """One replica's holds of one tenant: ``at`` (when it said so) and a count per
    credential (a digest of it, never the credential itself)."""

    at: float
    credentials: dict[str, int]


class TenantHolds(msgspec.Struct, frozen=True):
    """Every replica's holds of one tenant, by replica id."""

    replicas: dict[str, ReplicaHolds] = {}


class HoldLimits(msgspec.Struct, frozen=True, kw_only=True):
    per_credential: int
    per_tenant: int


class Verdict(msgspec.Struct, frozen=True):
    """``allowed``, or the limit that refused (``credential`` or ``tenant``)."""

    allowed: bool
    refused_by: str = ""


_decoder = msgspec.json.Decoder(TenantHolds)
_encoder = msgspec.json.Encoder()


def decode(raw: bytes | None) -> TenantHolds:
    """The stored value; an empty or unreadable one is no holds (it is rewritten whole)."""
    if not raw:
        return TenantHolds()
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return TenantHolds()


def encode(holds: TenantHolds) -> bytes:
    return _encoder.encode(holds)


def live(holds: TenantHolds, now: float, lease: float) -> TenantHolds:
    """Without the parts of replicas that have not spoken within ``lease`` seconds."""
    kept = {r: part for r, part in holds.replicas.items() if now - part.at < lease}
    return holds if len(kept) == len(holds.replicas) else TenantHolds(kept)


def judge(
    holds: TenantHolds,
    me: str,
    mine: dict[str, int],
    credential: str,
    limits: HoldLimits,
) -> Verdict:
    """May ``credential`` take one more hold, ``mine`` being this replica's counts now (not
    yet counting it) and ``holds`` the live parts of every replica (this one's ignored)?"""
    tenant = sum(mine.values())
    own = mine.get(credential, 0)
    for replica, part in holds.replicas.items():
        if replica == me:
            continue
        tenant += sum(part.credentials.values())
        own += part.credentials.get(credential, 0)
    if own + 1 > limits.per_credential:
        return Verdict(False, "credential")
    if tenant + 1 > limits.per_tenant:
        return Verdict(False, "tenant")
    return Verdict(True)


def with_mine(holds: TenantHolds, me: str, mine: dict[str, int], now: float) -> TenantHolds:
    """``holds`` with this replica's part set to ``mine`` (removed when it holds nothing)."""
    replicas = dict(holds.replicas)
    counts = {credential: n for credential, n in mine.items() if n > 0}
    if counts:
        replicas[me] = ReplicaHolds(now, counts)
    else:
        replicas.pop(me, None)
    return TenantHolds(replicas)


def total(holds: TenantHolds) -> int:
    return sum(sum(part.credentials.values()) for part in holds.replicas.values())
