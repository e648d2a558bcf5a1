"""compose.yaml's ``demo`` job (deploy/demo_tenant.py) against a running gateway.

No Docker engine runs here, so the job runs as the container would run it: the script
alone, with the variables compose gives it, against the gateway of a ``make dev`` stack.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys

import aiohttp

from tests.e2e.devstack import REPO, DevStack

SCRIPT = REPO / "deploy" / "demo_tenant.py"


async def job(env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_job_creates_a_tenant_once_and_its_key_works(stack: DevStack) -> None:
    tenant = f"demo-{secrets.token_hex(3)}"
    env = {
        "FLOWMESH_URL": stack.gateway_url,
        "FLOWMESH_ADMIN_TOKEN": stack.info["admin_token"],
        "FLOWMESH_DEMO_TENANT": tenant,
    }
    code, out, err = await job(env)
    assert code == 0, err
    key = out.split("admin key: ", 1)[1].strip()
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{stack.gateway_url}/api/v1/{tenant}/workflows",
            headers={"Authorization": f"Bearer {key}"},
        ) as answer,
    ):
        assert answer.status == 200
    code, out, err = await job(env)  # a restart of the stack runs the job again
    assert code == 0 and "exists" in out, (out, err)


async def test_the_job_says_what_is_wrong(stack: DevStack) -> None:
    code, _, err = await job({"FLOWMESH_URL": stack.gateway_url})
    assert code == 2 and "FLOWMESH_ADMIN_TOKEN is not set" in err
    code, _, err = await job(
        {"FLOWMESH_URL": stack.gateway_url, "FLOWMESH_ADMIN_TOKEN": "fmadm_wrong"}
    )
    assert code == 1 and err.startswith("401"), err
    code, _, err = await job(
        {
            "FLOWMESH_URL": stack.gateway_url,
            "FLOWMESH_ADMIN_TOKEN": stack.info["admin_token"],
            "FLOWMESH_DEMO_TENANT": "Not A Tenant",
        }
    )
    assert code == 1 and err.startswith("4"), err
