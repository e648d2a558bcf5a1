"""The NATS configuration of deploy/nats holds each tenant's users to that tenant.

A server runs the committed configuration unchanged (copied, as an operator would copy
it); the Flowmesh services' streams are made as the registry's user, and a gateway
serves the events ingress; users are minted with the ``flowmesh nats-user`` command for
two tenants. A publisher reaches only its own tenant's events (stored through the ingress,
which acknowledges them across the account boundary as JetStream would, a retry as a
duplicate); a reader hears only its own tenant's run events; neither can publish or
subscribe anywhere else, nor touch the JetStream API, and the server refuses each such
attempt as a permissions violation.
"""

from __future__ import annotations

import asyncio
import gc
import io
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NoStreamResponseError

from flowmesh_cli.main import run_cli
from tests.helpers import until
from tests.natsdeploy import (
    Deployed,
    Violations,
    copy_config,
    deployment,
    event_body,
    mint,
)

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="session")
async def deployed(tmp_path: Path) -> AsyncIterator[Deployed]:
    users = [(t, role) for t in ("acme", "globex") for role in ("publisher", "reader")]
    async with deployment(tmp_path, users) as made:
        yield made


async def test_a_publisher_publishes_its_own_tenants_events_into_jetstream(
    deployed: Deployed,
) -> None:
    publisher = await deployed.connect("acme-publisher")
    service = await deployed.connect("registry")
    try:
        event_id = secrets.token_hex(8)
        headers = {"Nats-Msg-Id": f"acme:{event_id}"}  # passed on to no stream
        body = event_body("acme", "order.created", event_id)
        ack = await publisher.jetstream().publish(
            "fm.acme.events.order.created", body, headers=headers
        )
        again = await publisher.jetstream().publish(
            "fm.acme.events.order.created", body, headers=headers
        )
        assert ack.stream == "FM_EVENTS"
        assert again.seq == ack.seq and again.duplicate
        stored = await service.jetstream().get_msg("FM_EVENTS", ack.seq)
        assert stored.subject == "fm.acme.events.order.created"
        assert stored.data == body
        assert "Nats-Msg-Id" not in (stored.headers or {})
    finally:
        await publisher.close()
        await service.close()


async def test_a_publisher_cannot_publish_outside_its_tenant(deployed: Deployed) -> None:
    violations = Violations()
    publisher = await deployed.connect("acme-publisher", violations)
    service = await deployed.connect("registry")
    try:
        js = service.jetstream()
        before = (await js.stream_info("FM_EVENTS")).state.messages
        for subject in (
            "fm.globex.events.order.created",  # another tenant's events
            "fm.acme.requests.runs",  # its own tenant, but not an event
            "fm.acme.runs.0190f3c2",  # forging run events
            "fm.rpc.registry.workflow_get",  # the services' RPC
            "$JS.API.STREAM.DELETE.FM_EVENTS",  # the JetStream API
        ):
            with pytest.raises((NatsTimeout, NoStreamResponseError)):
                await publisher.request(subject, b"{}", timeout=0.5)
            await until(lambda s=subject: violations.about(s), timeout=5)
        assert (await js.stream_info("FM_EVENTS")).state.messages == before
        for subject in ("fm.acme.runs.*", "fm.globex.events.>", ">"):
            await publisher.subscribe(subject)
            await publisher.flush()
            await until(lambda s=subject: violations.about(s), timeout=5)
    finally:
        await publisher.close()
        await service.close()


async def test_a_reader_hears_only_its_own_tenants_runs(deployed: Deployed) -> None:
    violations = Violations()
    reader = await deployed.connect("acme-reader", violations)
    executor = await deployed.connect("executor")
    try:
        heard: list[str] = []

        async def hear(msg: Any) -> None:
            heard.append(msg.subject)

        await reader.subscribe("fm.acme.runs.*", cb=hear)
        for subject in ("fm.globex.runs.*", "fm.*.runs.*", "fm.acme.events.>", "_INBOX.>"):
            await reader.subscribe(subject, cb=hear)
        await reader.flush()
        for subject in ("fm.globex.runs.*", "fm.*.runs.*", "fm.acme.events.>", "_INBOX.>"):
            await until(lambda s=subject: violations.about(s), timeout=5)
        js = executor.jetstream()
        await js.publish("fm.globex.runs.run-g", b'{"kind": "run.started"}')
        await js.publish("fm.acme.runs.run-a", b'{"kind": "run.started"}')
        await until(lambda: "fm.acme.runs.run-a" in heard, timeout=5)
        await executor.flush()
        await asyncio.sleep(0.2)  # time for a wrongly routed message to arrive too
        assert heard == ["fm.acme.runs.run-a"]
        await reader.publish("fm.acme.events.order.created", b"{}")
        await reader.flush()
        await until(lambda: violations.about("fm.acme.events.order.created"), timeout=5)
    finally:
        await reader.close()
        await executor.close()


async def test_a_reader_of_one_tenant_cannot_sign_in_as_another(deployed: Deployed) -> None:
    globex_password = deployed.users["globex-reader"]["password"]
    client = Client()
    try:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await client.connect(
                deployed.node.url_for("acme-reader", globex_password),
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=2,
            )
    finally:
        await client.close()  # nats-py leaves a refused connection's socket open
        gc.collect()  # ... so it is closed here, not in a later test's garbage collection


async def publishes(deployed: Deployed, minted: dict[str, Any], subject: str) -> None:
    """The minted user signs in and its event is stored on ``fm.<t>.events.<subject>``
    (after a restart, once the gateway has signed in again)."""
    url = deployed.node.url_for(minted["user"], minted["password"])
    nc = await nats.connect(url, allow_reconnect=False)
    tenant, event_type = minted["tenant"], subject.split(".", 3)[3]
    body = event_body(tenant, event_type, secrets.token_hex(8))

    async def stored() -> bool:
        try:
            ack = await nc.jetstream().publish(subject, body, timeout=1)
        except (NatsTimeout, NoStreamResponseError):
            return False
        return ack.stream == "FM_EVENTS"

    try:
        await until(stored, timeout=10, message=f"{subject} stored")
    finally:
        await nc.close()


async def test_a_new_user_of_a_known_tenant_works_after_a_reload(deployed: Deployed) -> None:
    minted = await mint(deployed.config, "acme", "publisher", name="acme-billing")
    assert minted["apply"] == "reload"
    await deployed.node.reload()
    await publishes(deployed, minted, "fm.acme.events.invoice.paid")


async def test_a_new_tenant_works_after_a_restart(deployed: Deployed) -> None:
    minted = await mint(deployed.config, "initech", "publisher")
    assert minted["apply"] == "restart"  # a new account's imports are not wired on reload
    await deployed.node.restart()
    await publishes(deployed, minted, "fm.initech.events.hello")


async def test_the_command_refuses_bad_input(tmp_path: Path) -> None:
    config = copy_config(tmp_path)
    before = (config / "tenants.conf").read_text()
    for argv, message in [
        (["nats-user", "a.>"], "tenant id"),
        (["nats-user", "rpc"], "reserved"),
        (["nats-user", "acme", "--name", "Acme Ops"], "user name"),
        (["nats-user", "acme", "--remove", "nobody"], "no NATS user"),
        (["nats-user", "acme", "--role", "admin"], "invalid choice"),
        (["nats-user", "acme", "--role", "worker"], "give --queue"),
        (["nats-user", "acme", "--role", "worker", "--queue", "a.>"], "queue 'a.>'"),
        (["nats-user", "acme", "--role", "reader", "--queue", "jobs"], "for a worker"),
        (["nats-user", "acme", "--max-connections", "0"], "at least 1"),
        (["nats-user", "acme", "--max-payload", "lots"], "invalid int"),
        (["nats-user", "acme", "--limits", "--max-payload", "9"], "no NATS user"),
    ]:
        out, err = io.StringIO(), io.StringIO()
        code = await run_cli([*argv, "--dir", str(config)], env={}, cwd=Path("/"), out=out, err=err)
        assert code == 2, argv
        assert message in err.getvalue(), (argv, err.getvalue())
        assert "Traceback" not in err.getvalue()
    assert (config / "tenants.conf").read_text() == before
    (config / "tenants.json").write_text("{not json")
    err = io.StringIO()
    code = await run_cli(
        ["nats-user", "acme", "--dir", str(config)],
        env={},
        cwd=Path("/"),
        out=io.StringIO(),
        err=err,
    )
    assert code == 2 and "is not a record of NATS users" in err.getvalue()
