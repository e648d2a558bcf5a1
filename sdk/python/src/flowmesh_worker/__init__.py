"""Flowmesh worker SDK: serve ``task`` nodes' queues from your own service.

::

    worker = Worker(nc, tenant="acme")

    @worker.task("shipping")
    async def ship(input: Any, task: TaskContext) -> Any:
        return {"tracking": await carrier.ship(input["order"], key=task.idempotency_key)}

    await worker.run(stop_event)
"""

from flowmesh_worker.context import Handler, TaskContext
from flowmesh_worker.worker import Worker

__all__ = ["Handler", "TaskContext", "Worker"]
