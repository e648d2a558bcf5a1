"""Parking a run: a durable timer asks for it again (DESIGN section 5, long waits).

The timer (:class:`flowmesh_proto.timers.Timer`, on ``<prefix>.<t>.timers.resume``) holds
the run's request; the scheduler publishes it when due with ``Nats-Msg-Id:
resume:<name>``, ``name`` being ``<run_id>:<the run's last stream sequence>``, so one park
is resumed once. The caller then acks the run's request: it holds no lease while parked.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from flowmesh_executor.nodes.base import StepServices
from flowmesh_proto import headers as h
from flowmesh_proto.msgids import park_timer_id, resume_msg_id, timer_msg_id
from flowmesh_proto.runs import RunRequest
from flowmesh_proto.timers import Timer
from flowmesh_shared import telemetry


async def park(services: StepServices, request: RunRequest, last_seq: int, due: datetime) -> None:
    name = park_timer_id(request.run_id, last_seq)
    timer = Timer(
        id=name,
        tenant=request.tenant,
        purpose="resume",
        due=due,
        request=request,
        request_msg_id=resume_msg_id(name),
    )
    await services.js.publish(
        services.subjects.timers(request.tenant, "resume"),
        msgspec.json.encode(timer),
        stream=services.streams.timers,
        headers=telemetry.inject({h.MSG_ID: timer_msg_id(name)}),
    )
