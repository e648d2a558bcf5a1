"""The smaller tags of the API: events, api-keys, secrets, connectors, actions, catalog,
audit and webhooks, one class each, for one tenant."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import msgspec

from flowmesh_client.follow import Delivery, StreamItem, StreamPolicy, follow
from flowmesh_client.paging import every
from flowmesh_client.transport import Transport, decode
from flowmesh_proto.actions import Action, ActionPage, ActionSpec
from flowmesh_proto.connectors import Connector, ConnectorPage, ConnectorSpec
from flowmesh_proto.entries import CatalogEntry, CatalogPage
from flowmesh_proto.http import EventAccepted, RunAccepted, TenantView
from flowmesh_proto.registry import (
    ApiKeyPage,
    ApiKeySecret,
    AuditEntry,
    AuditPage,
    Role,
    Secret,
    SecretDeleted,
    SecretPage,
    Tenant,
    TenantCreated,
)
from flowmesh_proto.runs import RunEvent


def _json(value: Mapping[str, Any] | msgspec.Struct) -> Any:
    return msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value


class _Tag:
    name = ""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def _path(self, *parts: str) -> str:
        return self._t.target.path(self.name, *parts)


class Events(_Tag):
    """``POST /events`` and the tenant's live stream of run events."""

    name = "events"

    def __init__(self, transport: Transport, policy: StreamPolicy) -> None:
        super().__init__(transport)
        self.policy = policy

    async def publish(
        self,
        type: str,
        data: Any = None,
        *,
        id: str | None = None,
        source: str = "",
        time: datetime | None = None,
    ) -> EventAccepted:
        """``POST /events`` (202): stored once per ``id`` (one is made if not given)."""
        body: dict[str, Any] = {"type": type, "data": data}
        if id is not None:
            body["id"] = id
        if source:
            body["source"] = source
        if time is not None:
            body["time"] = time.isoformat()
        answer = await self._t.request("POST", self._path(), json=body, keyed=id is not None)
        return decode(answer, EventAccepted)

    def stream_items(
        self, *, workflow_id: str | None = None, last_event_id: str = ""
    ) -> AsyncIterator[StreamItem]:
        """``GET /events/stream``: every run event of the tenant from now on (never ends)."""
        query = {"workflow_id": workflow_id}
        return follow(
            self._t, self._path("stream"), self.policy, last_event_id=last_event_id, query=query
        )

    async def stream(
        self, *, workflow_id: str | None = None, last_event_id: str = ""
    ) -> AsyncIterator[RunEvent]:
        items = self.stream_items(workflow_id=workflow_id, last_event_id=last_event_id)
        async for item in items:
            if isinstance(item, Delivery):
                yield item.event


class ApiKeys(_Tag):
    """``/api-keys`` (admin): list, create (the key shown once), revoke."""

    name = "api-keys"

    async def list(self) -> ApiKeyPage:
        return decode(await self._t.request("GET", self._path()), ApiKeyPage)

    async def create(self, name: str, role: Role = "viewer") -> ApiKeySecret:
        answer = await self._t.request("POST", self._path(), json={"name": name, "role": role})
        return decode(answer, ApiKeySecret)

    async def revoke(self, key_id: str) -> None:
        await self._t.request("DELETE", self._path(key_id))


class Secrets(_Tag):
    """``/secrets`` (admin): values are write-only."""

    name = "secrets"

    async def list(self) -> SecretPage:
        return decode(await self._t.request("GET", self._path()), SecretPage)

    async def set(self, name: str, value: str) -> Secret:
        answer = await self._t.request("PUT", self._path(name), json={"value": value})
        return decode(answer, Secret)

    async def delete(self, name: str) -> SecretDeleted:
        return decode(await self._t.request("DELETE", self._path(name)), SecretDeleted)


class Connectors(_Tag):
    """``/connectors``: external services' descriptions (credentials by secret name)."""

    name = "connectors"

    async def list(self, *, limit: int | None = None, cursor: str | None = None) -> ConnectorPage:
        query = {"limit": limit, "cursor": cursor}
        return decode(await self._t.request("GET", self._path(), query=query), ConnectorPage)

    async def iter(self) -> AsyncIterator[Connector]:
        async for item in every(lambda cursor: self.list(cursor=cursor)):
            yield item

    async def get(self, name: str) -> Connector:
        return decode(await self._t.request("GET", self._path(name)), Connector)

    async def put(self, name: str, spec: ConnectorSpec | Mapping[str, Any]) -> Connector:
        answer = await self._t.request("PUT", self._path(name), json=_json(spec))
        return decode(answer, Connector)

    async def delete(self, name: str) -> None:
        await self._t.request("DELETE", self._path(name))


class Actions(_Tag):
    """``/actions``: built-in and the tenant's own versioned HTTP calls."""

    name = "actions"

    async def list(self, *, limit: int | None = None, cursor: str | None = None) -> ActionPage:
        query = {"limit": limit, "cursor": cursor}
        return decode(await self._t.request("GET", self._path(), query=query), ActionPage)

    async def iter(self) -> AsyncIterator[Action]:
        async for item in every(lambda cursor: self.list(cursor=cursor)):
            yield item

    async def get(self, name: str, *, version: int | None = None) -> Action:
        path = self._path(name) if version is None else self._path(name, "versions", str(version))
        return decode(await self._t.request("GET", path), Action)

    async def versions(
        self, name: str, *, limit: int | None = None, cursor: str | None = None
    ) -> ActionPage:
        query = {"limit": limit, "cursor": cursor}
        answer = await self._t.request("GET", self._path(name, "versions"), query=query)
        return decode(answer, ActionPage)

    async def put(self, name: str, spec: ActionSpec | Mapping[str, Any]) -> Action:
        return decode(await self._t.request("PUT", self._path(name), json=_json(spec)), Action)

    async def delete(self, name: str) -> None:
        await self._t.request("DELETE", self._path(name))


class Catalog(_Tag):
    """``GET /catalog``: every node type and action, with its schemas."""

    name = "catalog"

    async def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        kind: str | None = None,
        category: str | None = None,
    ) -> CatalogPage:
        query = {"limit": limit, "cursor": cursor, "kind": kind, "category": category}
        return decode(await self._t.request("GET", self._path(), query=query), CatalogPage)

    async def iter(self, /, **filters: Any) -> AsyncIterator[CatalogEntry]:
        async for item in every(lambda cursor: self.list(cursor=cursor, **filters)):
            yield item


class Audit(_Tag):
    """``GET /audit`` (admin): the tenant's audit log, newest first."""

    name = "audit"

    async def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        target: str | None = None,
    ) -> AuditPage:
        query = {"limit": limit, "cursor": cursor, "action": action, "actor": actor}
        query["target"] = target
        return decode(await self._t.request("GET", self._path(), query=query), AuditPage)

    async def iter(self, /, **filters: Any) -> AsyncIterator[AuditEntry]:
        async for item in every(lambda cursor: self.list(cursor=cursor, **filters)):
            yield item


class Webhooks(_Tag):
    """``POST /webhooks/{workflow_id}/{trigger_id}``: a call signed with the trigger's secret
    (the ``flowmesh`` scheme), as a sender of webhooks would make it."""

    name = "webhooks"

    async def send(
        self, workflow_id: str, trigger_id: str, body: Any, secret: str, *, at: int | None = None
    ) -> RunAccepted:
        raw = msgspec.json.encode(body)
        stamp = str(int(time.time()) if at is None else at)
        mac = hmac.new(secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()
        headers = {"Flowmesh-Timestamp": stamp, "Flowmesh-Signature": f"v1={mac}"}
        path = self._path(workflow_id, trigger_id)
        answer = await self._t.request("POST", path, content=raw, headers=headers)
        return decode(answer, RunAccepted)


class Tenants(_Tag):
    """``/api/v1/admin/tenants`` (the platform admin: the client's key is then the gateway's
    admin token, ``FLOWMESH_GATEWAY_ADMIN_TOKEN``): create a tenant with its first admin
    key, read one with its runs now, change its settings."""

    name = "tenants"

    def _admin(self, *parts: str) -> str:
        return "/".join(["/api/v1/admin/tenants", *(quote(part, safe="") for part in parts)])

    async def create(self, id: str, name: str = "") -> TenantCreated:
        answer = await self._t.request("POST", self._admin(), json={"id": id, "name": name})
        return decode(answer, TenantCreated)

    async def get(self, id: str) -> TenantView:
        return decode(await self._t.request("GET", self._admin(id)), TenantView)

    async def update(self, id: str, /, **changes: Any) -> Tenant:
        """``PATCH``: ``name``, ``rate_limit``, ``run_retention_days``, ``max_holds``,
        ``max_queued_runs``, ``weight``, ``max_running`` (None: back to the default)."""
        answer = await self._t.request("PATCH", self._admin(id), json=changes)
        return decode(answer, Tenant)
