"""What every run of one executor process shares (made once in :mod:`flowmesh_executor.main`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flowmesh_executor.concurrency import Slots
from flowmesh_executor.control import CancelBook, RunControl
from flowmesh_executor.metrics import ExecutorMetrics
from flowmesh_executor.nodes.base import Step, StepServices
from flowmesh_executor.pauses import PauseWatch
from flowmesh_shared.rpc import RpcClient
from flowmesh_shared.runlife import RunLifecycle


@dataclass(slots=True)
class ExecutorParts:
    """What every run of one executor process shares."""

    services: StepServices
    rpc: RpcClient
    cancels: CancelBook
    steps: Mapping[str, Step]
    metrics: ExecutorMetrics
    name: str
    slots: Slots
    control: RunControl
    pauses: PauseWatch
    #: Runs as NATS holds them: a run's history and its parent's; parking a run.
    life: RunLifecycle
