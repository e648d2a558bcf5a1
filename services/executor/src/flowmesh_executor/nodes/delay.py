"""``delay``: wait for ``duration`` after the step started, or ``until`` a time.

The wait is counted from the attempt's ``started_at`` (recorded in its ``step.started``), so
a run resumed by another executor waits only for what is left. A long wait parks the run
(:attr:`StepCall.long_wait`): resumed when due, the step finds nothing left to wait for.
"""

from __future__ import annotations

from typing import Any

from flowmesh_executor.nodes.base import StepCall, StepError, StepServices
from flowmesh_executor.nodes.params import INVALID, duration, moment


async def run(call: StepCall, services: StepServices) -> Any:
    given = call.parameters
    if given.get("until") is not None:
        due = moment(given["until"], "until")
    elif given.get("duration") is not None:
        due = call.started_at + duration(given["duration"], "duration")
    else:
        raise StepError(INVALID, "a delay needs duration or until")
    if call.long_wait is not None:
        call.long_wait(due, None)
    await services.waits.sleep_until(due)
    return None
