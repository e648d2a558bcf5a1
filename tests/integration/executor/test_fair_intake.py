"""Fair intake on real NATS, in the session's executor: how it learns who is waiting."""

from __future__ import annotations

import msgspec

from flowmesh_proto import headers as h
from flowmesh_proto.runs import RunRequest, TriggerInfo
from flowmesh_proto.subjects import run_request_consumer
from tests.integration.executor.runs import Runs

QUICK = {"name": "quick", "nodes": [{"id": "n", "type": "noop"}], "edges": []}


async def test_a_request_whose_doorbell_was_lost_is_found_by_the_sweep(runs: Runs) -> None:
    workflow = await runs.workflow(QUICK)
    run_id = await runs.start(workflow, request=False)
    request = RunRequest(
        tenant=runs.tenant,
        run_id=run_id,
        workflow_id=workflow.id,
        version=workflow.version,
        trigger=TriggerInfo(kind="api"),
        input={},
    )
    await runs.js.publish(  # stored, and no bell rung
        runs.subjects.run_requests(runs.tenant),
        msgspec.json.encode(request),
        headers={h.MSG_ID: run_id},
    )
    assert (await runs.finished(run_id, timeout=10)).status == "succeeded"


async def test_each_tenant_has_a_consumer_of_its_own(runs: Runs) -> None:
    run_id = await runs.start(await runs.workflow(QUICK))
    assert (await runs.finished(run_id)).status == "succeeded"
    info = await runs.js.consumer_info(runs.streams.run_requests, run_request_consumer(runs.tenant))
    assert info.config.filter_subject == runs.subjects.run_requests(runs.tenant)
    assert info.num_pending == 0 and info.num_ack_pending == 0
