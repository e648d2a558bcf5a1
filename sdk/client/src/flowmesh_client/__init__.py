"""Flowmesh's client SDK: the gateway's HTTP API from Python (docs/client.md)."""

from flowmesh_client.client import Client
from flowmesh_client.config import Target
from flowmesh_client.errors import (
    BadAnswer,
    ConfigError,
    Conflict,
    ConnectionFailed,
    FlowmeshError,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from flowmesh_client.follow import Delivery, Reconnecting, Skipped, StreamLost, StreamPolicy
from flowmesh_client.retry import RetryPolicy
from flowmesh_client.sync import SyncClient

__all__ = [
    "BadAnswer",
    "Client",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "Delivery",
    "FlowmeshError",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "Reconnecting",
    "RetryPolicy",
    "Skipped",
    "StreamLost",
    "StreamPolicy",
    "SyncClient",
    "Target",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
]
