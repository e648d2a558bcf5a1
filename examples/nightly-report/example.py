"""Nightly report: a cron trigger (``0 2 * * *`` in Europe/Berlin), run once now as well.

Keeps a viewer API key as the secret ``REPORT_API_KEY`` (made once), imports the workflow
pointed at this stack's API, shows the trigger as the API stores it, when it fires next,
and that the scheduler has armed it; then starts one run now through ``execute`` with the
input a cron fire would give it (``{"fire_time": ...}``) and shows the report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowmesh_examples import Flowmesh, now, say, workflow

from flowmesh_scheduler.cron import CronSpec

SECRET = "REPORT_API_KEY"  # noqa: S105 - the name of the secret, not a value
ARMED = "flowmesh_scheduler_cron_triggers"


async def ensure_report_key(flowmesh: Flowmesh) -> None:
    """The secret holding the report's read-only key: a viewer key made the first time."""
    _, secrets = await flowmesh.call("GET", "secrets")
    if any(item["name"] == SECRET for item in secrets["items"]):
        say(f"secret {SECRET} is already set")
        return
    _, key = await flowmesh.call(
        "POST", "api-keys", json={"name": "nightly-report", "role": "viewer"}
    )
    await flowmesh.call("PUT", f"secrets/{SECRET}", json={"value": key["key"]})
    say(f"made a viewer API key ({key['id']}) and stored it as the secret {SECRET}")


def describe(trigger: dict[str, Any]) -> str:
    spec = CronSpec(trigger["cron"], trigger.get("timezone", "UTC"))
    next_fire = spec.next_fire(datetime.now(UTC)).astimezone(spec.zone)
    return (
        f"trigger {trigger['id']!r}: cron {trigger['cron']!r} in {spec.zone.key}, "
        f"catch_up {trigger.get('catch_up', 'skip')}; next fire {next_fire.isoformat()}"
    )


async def main(flowmesh: Flowmesh, folder: Path) -> bool:
    await ensure_report_key(flowmesh)
    definition = workflow(
        folder / "workflow.yaml",
        flowmesh_url=flowmesh.stack.gateway_url,
        tenant=flowmesh.stack.tenant,
    )
    installed = await flowmesh.install(definition)
    _, stored = await flowmesh.call("GET", f"workflows/{installed['id']}")
    for trigger in stored["triggers"]:
        say(describe(trigger))
    armed = await flowmesh.until(
        lambda: flowmesh.scheduler_metric(ARMED), lambda value: (value or 0) >= 1
    )
    say(f"the scheduler has {armed or 0:g} cron trigger(s) armed ({ARMED})")
    say("running the report once now, as the 02:00 fire would:")
    run_id = await flowmesh.execute(installed, {"fire_time": now()})
    run = await flowmesh.follow(run_id)
    return bool(run["status"] == "succeeded" and (armed or 0) >= 1)
