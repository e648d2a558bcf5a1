"""Workflow versions, loaded from the registry once and kept: a version never changes.

``get(tenant, workflow_id, version)`` answers from memory after the first call (concurrent
first calls share one registry request); ``version=None`` asks for the current version
each time and caches what it gets under its number.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import msgspec

from flowmesh_proto import registry as r
from flowmesh_proto.principal import Principal
from flowmesh_proto.workflow import Definition, definition_from_builtins
from flowmesh_shared.errors import FlowmeshError
from flowmesh_shared.rpc import RpcClient

__all__ = ["EXECUTOR_PRINCIPAL", "Definitions", "definition_of"]

EXECUTOR_PRINCIPAL = Principal(kind="service", name="executor")

Key = tuple[str, str, int]


class UnusableVersion(FlowmeshError):
    """The stored version cannot be run."""


def definition_of(workflow: r.Workflow) -> Definition:
    """The definition a registry ``Workflow`` resource holds."""
    data: dict[str, Any] = {}
    for field in sorted(Definition.KEYS):
        value = getattr(workflow, field)
        if value is not None:
            data[field] = value
    try:
        return definition_from_builtins(data)
    except msgspec.ValidationError as exc:
        raise UnusableVersion(
            detail=f"workflow {workflow.id} version {workflow.version} cannot be read: {exc}"
        ) from exc


class Definitions:
    def __init__(self, rpc: RpcClient, size: int = 1024) -> None:
        self._rpc = rpc
        self._size = size
        self._cache: OrderedDict[Key, Definition] = OrderedDict()
        self._loading: dict[Key, asyncio.Future[Definition]] = {}

    async def get(
        self, tenant: str, workflow_id: str, version: int | None
    ) -> tuple[int, Definition]:
        """(version, definition); raises the registry's error (WORKFLOW_NOT_FOUND ...)."""
        if version is None:
            number, definition = await self._load(tenant, workflow_id, None)
            self._keep((tenant, workflow_id, number), definition)
            return number, definition
        key = (tenant, workflow_id, version)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return version, cached
        loading = self._loading.get(key)
        if loading is not None:
            return version, await asyncio.shield(loading)
        future: asyncio.Future[Definition] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            _, definition = await self._load(tenant, workflow_id, version)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else must
            raise
        finally:
            self._loading.pop(key, None)
        future.set_result(definition)
        self._keep(key, definition)
        return version, definition

    async def _load(
        self, tenant: str, workflow_id: str, version: int | None
    ) -> tuple[int, Definition]:
        workflow = await self._rpc.call(
            r.WorkflowGet(id=workflow_id, version=version),
            tenant=tenant,
            principal=EXECUTOR_PRINCIPAL,
        )
        return workflow.version, definition_of(workflow)

    def _keep(self, key: Key, definition: Definition) -> None:
        self._cache[key] = definition
        self._cache.move_to_end(key)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
