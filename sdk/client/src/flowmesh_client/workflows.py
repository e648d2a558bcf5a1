"""``client.workflows``: the workflows tag of the API (create, apply by name, list, read,
versions, export, import, validate, change, delete, clone, locks, stats, execute)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from flowmesh_client.paging import every
from flowmesh_client.transport import Transport, decode
from flowmesh_proto.http import RunAccepted, ValidationAnswer
from flowmesh_proto.registry import (
    BatchResults,
    LockInfo,
    VersionInfo,
    VersionPage,
    WebhookSecret,
    Workflow,
    WorkflowPage,
    WorkflowSort,
    WorkflowStats,
)
from flowmesh_proto.runs import Run

Document = Mapping[str, Any] | msgspec.Struct
YAML = "application/yaml"


def _iso_duration(value: timedelta) -> str:
    return f"PT{value.total_seconds():g}S"


def _as_json(document: Document) -> Any:
    return msgspec.to_builtins(document) if isinstance(document, msgspec.Struct) else document


class Workflows:
    """Calls of the workflows tag, for one tenant."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def _path(self, *parts: str) -> str:
        return self._t.target.path("workflows", *parts)

    async def create(self, definition: Document) -> Workflow:
        """``POST /workflows`` (201)."""
        answer = await self._t.request("POST", self._path(), json=_as_json(definition))
        return decode(answer, Workflow)

    async def apply(self, definition: Document) -> Workflow:
        """``PUT /workflows/by-name/{name}``: create, or store a new version if it changed."""
        body = _as_json(definition)
        name = body.get("name") if isinstance(body, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ValueError("the definition has no name to apply it by")
        answer = await self._t.request("PUT", self._path("by-name", name), json=body)
        return decode(answer, Workflow)

    async def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        q: str | None = None,
        category: str | None = None,
        tags: Sequence[str] | None = None,
        enabled: bool | None = None,
        sort: WorkflowSort | None = None,
    ) -> WorkflowPage:
        """``GET /workflows``: one page."""
        query = {
            "limit": limit,
            "cursor": cursor,
            "q": q,
            "category": category,
            "tags": ",".join(tags) if tags else None,
            "enabled": enabled,
            "sort": sort,
        }
        return decode(await self._t.request("GET", self._path(), query=query), WorkflowPage)

    async def iter(
        self,
        *,
        limit: int | None = None,
        q: str | None = None,
        category: str | None = None,
        tags: Sequence[str] | None = None,
        enabled: bool | None = None,
        sort: WorkflowSort | None = None,
    ) -> AsyncIterator[Workflow]:
        """Every workflow (``list``'s filters; ``limit``: per page), page after page."""
        async for item in every(
            lambda cursor: self.list(
                cursor=cursor,
                limit=limit,
                q=q,
                category=category,
                tags=tags,
                enabled=enabled,
                sort=sort,
            )
        ):
            yield item

    async def get(self, workflow_id: str, *, version: int | None = None) -> Workflow:
        """``GET /workflows/{id}`` (``?version=N``: as it was then)."""
        answer = await self._t.request("GET", self._path(workflow_id), query={"version": version})
        return decode(answer, Workflow)

    async def find(self, name_or_id: str) -> Workflow:
        """The workflow named ``name_or_id``, else the one of that id (NotFound if neither)."""
        async for item in self.iter(q=name_or_id, limit=100):
            if item.name == name_or_id:
                return item
        return await self.get(name_or_id)

    async def versions(
        self, workflow_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> VersionPage:
        """``GET /workflows/{id}/versions``: newest first."""
        query = {"limit": limit, "cursor": cursor}
        answer = await self._t.request("GET", self._path(workflow_id, "versions"), query=query)
        return decode(answer, VersionPage)

    async def iter_versions(self, workflow_id: str) -> AsyncIterator[VersionInfo]:
        async for item in every(lambda cursor: self.versions(workflow_id, cursor=cursor)):
            yield item

    async def version(self, workflow_id: str, number: int) -> Workflow:
        """``GET /workflows/{id}/versions/{n}``."""
        path = self._path(workflow_id, "versions", str(number))
        return decode(await self._t.request("GET", path), Workflow)

    async def export(
        self,
        workflow_id: str,
        *,
        format: Literal["json", "yaml"] = "yaml",
        version: int | None = None,
    ) -> str:
        """``GET /workflows/{id}/export``: the document as text."""
        query = {"format": format, "version": version}
        answer = await self._t.request("GET", self._path(workflow_id, "export"), query=query)
        return answer.body.decode()

    async def import_(self, document: str | bytes | Document, *, yaml: bool = False) -> Workflow:
        """``POST /workflows/import`` (201): a document as JSON or YAML text, or a mapping."""
        return decode(
            await self._send_document("POST", self._path("import"), document, yaml), Workflow
        )

    async def validate(
        self, document: str | bytes | Document, *, yaml: bool = False
    ) -> ValidationAnswer:
        """``POST /workflows/validate``: ``valid`` and ``errors`` (with lines for YAML)."""
        answer = await self._send_document("POST", self._path("validate"), document, yaml)
        return decode(answer, ValidationAnswer)

    async def update(
        self,
        workflow_id: str,
        document: str | bytes | Document,
        *,
        yaml: bool = False,
        if_version: int | None = None,
    ) -> Workflow:
        """``PUT /workflows/{id}``: a new version (``if_version``: 412 if it is not the latest)."""
        headers = {"If-Match": f'"v{if_version}"'} if if_version is not None else None
        path = self._path(workflow_id)
        return decode(await self._send_document("PUT", path, document, yaml, headers), Workflow)

    async def _send_document(
        self,
        method: str,
        path: str,
        document: str | bytes | Document,
        yaml: bool,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        if isinstance(document, str | bytes):
            content = document.encode() if isinstance(document, str) else document
            kind = YAML if yaml else "application/json"
            return await self._t.request(
                method, path, content=content, content_type=kind, headers=headers
            )
        return await self._t.request(method, path, json=_as_json(document), headers=headers)

    async def patch(
        self,
        workflow_id: str,
        *,
        enabled: bool | None = None,
        tags: Sequence[str] | None = None,
        current_version: int | None = None,
    ) -> Workflow:
        """``PATCH /workflows/{id}``: ``enabled``, ``tags``, ``current_version`` (a rollback)."""
        given = {
            "enabled": enabled,
            "tags": list(tags) if tags is not None else None,
            "current_version": current_version,
        }
        body = {k: v for k, v in given.items() if v is not None}
        return decode(await self._t.request("PATCH", self._path(workflow_id), json=body), Workflow)

    async def delete(self, workflow_id: str) -> None:
        """``DELETE /workflows/{id}`` (soft, 204)."""
        await self._t.request("DELETE", self._path(workflow_id))

    async def batch(self, operations: Sequence[Mapping[str, Any]]) -> BatchResults:
        """``POST /workflows/batch``: up to 100 create/update/upsert/delete, all or nothing."""
        body = {"operations": [dict(op) for op in operations]}
        return decode(await self._t.request("POST", self._path("batch"), json=body), BatchResults)

    async def clone(self, workflow_id: str, name: str) -> Workflow:
        """``POST /workflows/{id}/clone`` (201)."""
        answer = await self._t.request(
            "POST", self._path(workflow_id, "clone"), json={"name": name}
        )
        return decode(answer, Workflow)

    async def lock(self, workflow_id: str, *, ttl_seconds: int = 300) -> LockInfo:
        path = self._path(workflow_id, "lock")
        return decode(
            await self._t.request("POST", path, json={"ttl_seconds": ttl_seconds}), LockInfo
        )

    async def unlock(self, workflow_id: str) -> None:
        await self._t.request("DELETE", self._path(workflow_id, "lock"))

    async def stats(self, workflow_id: str) -> WorkflowStats:
        """``GET /workflows/{id}/stats``."""
        return decode(await self._t.request("GET", self._path(workflow_id, "stats")), WorkflowStats)

    async def rotate_webhook_secret(self, workflow_id: str, trigger_id: str) -> WebhookSecret:
        """``POST /workflows/{id}/triggers/{trigger_id}/secret`` (201): the new secret, once."""
        path = self._path(workflow_id, "triggers", trigger_id, "secret")
        return decode(await self._t.request("POST", path), WebhookSecret)

    async def execute(
        self,
        workflow_id: str,
        input: Any = None,
        *,
        version: int | None = None,
        delay: timedelta | None = None,
        run_at: datetime | None = None,
        wait: timedelta | None = None,
        idempotency_key: str | None = None,
    ) -> RunAccepted | Run:
        """``POST /workflows/{id}/execute``: the queued run (``RunAccepted``), or with ``wait``
        the finished run (``Run``) if it ended in time. The call's idempotency key (given, or
        made once here) makes it safe to retry: asked again, it starts one run."""
        body: dict[str, Any] = {
            "input": {} if input is None else input,
            "idempotency_key": idempotency_key or f"fmc-{uuid.uuid4()}",
        }
        if version is not None:
            body["version"] = version
        if delay is not None:
            body["delay"] = _iso_duration(delay)
        if run_at is not None:
            body["run_at"] = run_at.isoformat()
        query = {"wait": _iso_duration(wait) if wait is not None else None}
        path = self._path(workflow_id, "execute")
        answer = await self._t.request("POST", path, query=query, json=body, keyed=True)
        if answer.status == 200:
            return decode(answer, Run)
        return decode(answer, RunAccepted)
