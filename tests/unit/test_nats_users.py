"""``flowmesh nats-user``: the record, the rendered configuration and the permissions."""

from __future__ import annotations

import io
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import bcrypt
import pytest

from flowmesh_cli import natsusers
from flowmesh_cli.main import run_cli
from flowmesh_devtools.localstack import nats_server_binary
from tests.natsdeploy import DEPLOY, account_passwords

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_permissions_hold_each_role_to_its_tenants_subjects() -> None:
    assert natsusers.permissions("fm", "acme", "publisher") == (
        ("fm.acme.events.>",),
        ("_INBOX.>",),
    )
    assert natsusers.permissions("fm", "acme", "reader") == ((), ("fm.acme.runs.*",))
    assert natsusers.permissions("fmx", "globex", "reader") == ((), ("fmx.globex.runs.*",))
    assert natsusers.permissions("fm", "acme", "worker", ["jobs"]) == (
        (
            "$JS.API.CONSUMER.MSG.NEXT.FM_TASKS.tasks_acme_jobs",
            "$JS.ACK.FM_TASKS.tasks_acme_jobs.>",
            "fm.acme.task-replies.*",
        ),
        ("_INBOX_t_acme.>",),
    )


def test_a_worker_imports_only_its_tenants_queues_and_replies(tmp_path: Path) -> None:
    natsusers.mint(tmp_path, "acme", "publisher", cost=4, now=NOW)
    first = natsusers.mint(tmp_path, "acme", "worker", queues=["jobs"], cost=4, now=NOW)
    again = natsusers.mint(tmp_path, "acme", "worker", "acme-two", queues=["jobs"], cost=4, now=NOW)
    more = natsusers.mint(tmp_path, "acme", "worker", "acme-three", queues=["b"], cost=4, now=NOW)
    # New imports need a restart; the same ones again only a reload.
    assert (first.apply, again.apply, more.apply) == ("restart", "reload", "restart")
    assert first.inbox_prefix == "_INBOX_t_acme" and first.queues == ("jobs",)
    record = natsusers.load(tmp_path)
    service = '{{service: {{account: FLOWMESH, subject: "{}"}}}}'.format
    assert natsusers.imports(record, "acme") == (
        '{service: {account: FLOWMESH, subject: "fm.acme.ingress.>"}, to: "fm.acme.events.>"}',
        '{stream: {account: FLOWMESH, subject: "fm.acme.runs.*"}}',
        service("fm.acme.task-replies.*"),
        service("$JS.API.CONSUMER.MSG.NEXT.FM_TASKS.tasks_acme_b"),
        service("$JS.ACK.FM_TASKS.tasks_acme_b.>"),
        service("$JS.API.CONSUMER.MSG.NEXT.FM_TASKS.tasks_acme_jobs"),
        service("$JS.ACK.FM_TASKS.tasks_acme_jobs.>"),
    )
    text = (tmp_path / "tenants.conf").read_text()
    assert "tasks_acme_b" not in text.split("acme-two")[1].split("\n")[0]  # held to its queue


def test_consumer_names_of_two_tenants_never_meet() -> None:
    """With '-' between them, tenant a's queue b-c and tenant a-b's queue c would share one."""
    from flowmesh_proto.tasks import task_consumer

    assert task_consumer("a", "b-c") != task_consumer("a-b", "c")


def test_account_limits_have_defaults_and_are_set_per_tenant(tmp_path: Path) -> None:
    natsusers.mint(tmp_path, "acme", "reader", cost=4, now=NOW)
    minted = natsusers.mint(
        tmp_path, "globex", "reader", limits={"max_connections": 3}, cost=4, now=NOW
    )
    assert minted.limits == natsusers.AccountLimits(max_connections=3)
    changed = natsusers.set_limits(tmp_path, "globex", {"max_payload": 4096})
    assert changed == natsusers.AccountLimits(max_connections=3, max_payload=4096)
    text = (tmp_path / "tenants.conf").read_text()
    assert "limits: {max_connections: 100, max_subscriptions: 1000, max_payload: 1048576}" in text
    assert "limits: {max_connections: 3, max_subscriptions: 1000, max_payload: 4096}" in text
    with pytest.raises(natsusers.NatsUserError, match="at least 1"):
        natsusers.set_limits(tmp_path, "globex", {"max_subscriptions": 0})
    with pytest.raises(natsusers.NatsUserError, match="no NATS user"):
        natsusers.set_limits(tmp_path, "initech", {"max_payload": 1})
    natsusers.remove(tmp_path, "globex", "globex-reader")
    assert "globex" not in natsusers.load(tmp_path).limits


def test_minting_records_a_hash_and_renders_one_account_per_tenant(tmp_path: Path) -> None:
    publisher = natsusers.mint(tmp_path, "acme", "publisher", cost=4, now=NOW)
    reader = natsusers.mint(tmp_path, "acme", "reader", cost=4, now=NOW)
    other = natsusers.mint(tmp_path, "globex", "publisher", cost=4, now=NOW)
    assert (publisher.apply, reader.apply, other.apply) == ("restart", "reload", "restart")
    record = natsusers.load(tmp_path)
    assert [u.user for u in record.users] == ["acme-publisher", "acme-reader", "globex-publisher"]
    stored = record.users[0]
    assert publisher.password not in (tmp_path / "tenants.json").read_text()
    assert bcrypt.checkpw(publisher.password.encode(), stored.password_hash.encode())
    text = (tmp_path / "tenants.conf").read_text()
    assert text == natsusers.render(record)
    assert text.count("TENANT_acme: {") == 1 and text.count("TENANT_globex: {") == 1
    # Events go to the ingress (the gateways), never straight into a stream.
    ingress = '{service: {account: FLOWMESH, subject: "fm.acme.ingress.>"}, to: "fm.acme.events.>"}'
    assert ingress in text
    assert 'subject: "fm.acme.events.>"' not in text
    assert '{stream: {account: FLOWMESH, subject: "fm.globex.runs.*"}}' in text
    assert publisher.password not in text


def test_rendering_does_not_depend_on_the_order_users_were_minted() -> None:
    users = [
        natsusers.NatsUser(
            user=name, tenant=tenant, role="reader", password_hash="$2a$04$x", created_at="t"
        )
        for name, tenant in [("b-reader", "b1"), ("a-reader", "a1"), ("a-two", "a1")]
    ]
    one = natsusers.TenantUsers(users=tuple(users))
    two = natsusers.TenantUsers(users=tuple(reversed(users)))
    assert natsusers.render(one) == natsusers.render(two)
    assert natsusers.render(one).index("TENANT_a1") < natsusers.render(one).index("TENANT_b1")


def test_removing_the_last_user_removes_the_tenants_account(tmp_path: Path) -> None:
    natsusers.mint(tmp_path, "acme", "reader", cost=4, now=NOW)
    natsusers.remove(tmp_path, "acme", "acme-reader")
    assert "TENANT_acme" not in (tmp_path / "tenants.conf").read_text()
    with pytest.raises(natsusers.NatsUserError, match="no NATS user"):
        natsusers.remove(tmp_path, "acme", "acme-reader")


def test_a_name_in_use_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    natsusers.mint(tmp_path, "acme", "reader", name="shared", cost=4, now=NOW)
    before = (tmp_path / "tenants.json").read_bytes()
    with pytest.raises(natsusers.NatsUserError, match="exists"):
        natsusers.mint(tmp_path, "globex", "reader", name="shared", cost=4, now=NOW)
    assert (tmp_path / "tenants.json").read_bytes() == before


async def test_listing_shows_a_tenants_users_without_their_hashes(tmp_path: Path) -> None:
    natsusers.mint(tmp_path, "acme", "reader", cost=4, now=NOW)
    natsusers.mint(tmp_path, "globex", "reader", cost=4, now=NOW)
    out = io.StringIO()
    code = await run_cli(
        ["nats-user", "acme", "--list", "--dir", str(tmp_path)],
        env={},
        cwd=Path("/"),
        out=out,
        err=io.StringIO(),
    )
    assert code == 0
    assert out.getvalue() == "acme-reader\treader\t2026-11-23T12:00:00+00:00\n"
    out = io.StringIO()
    code = await run_cli(
        ["nats-user", "acme", "--list", "--json", "--dir", str(tmp_path)],
        env={},
        cwd=Path("/"),
        out=out,
        err=io.StringIO(),
    )
    assert code == 0
    assert json.loads(out.getvalue()) == [
        {"user": "acme-reader", "role": "reader", "created_at": "2026-11-23T12:00:00+00:00"}
    ]


async def test_the_human_report_says_how_to_apply_it(tmp_path: Path) -> None:
    out = io.StringIO()
    code = await run_cli(
        ["nats-user", "acme", "--dir", str(tmp_path)], env={}, cwd=Path("/"), out=out, err=out
    )
    assert code == 0
    text = out.getvalue()
    assert "password (shown once): " in text and "restart the server" in text
    assert json.loads((tmp_path / "tenants.json").read_text())["users"][0]["role"] == "publisher"


@pytest.mark.parametrize("name", ["nats.conf", "durable.conf", "cluster.conf"])
def test_every_committed_configuration_is_valid(name: str, tmp_path: Path) -> None:
    """``nats-server -t`` accepts each file, with the minted tenants included."""
    natsusers.mint(tmp_path, "acme", "publisher", cost=4, now=NOW)
    natsusers.mint(tmp_path, "acme", "reader", cost=4, now=NOW)
    natsusers.mint(tmp_path, "acme", "worker", queues=["jobs"], cost=4, now=NOW)
    for conf in DEPLOY.glob("*.conf"):
        if conf.name != "tenants.conf":
            (tmp_path / conf.name).write_text(conf.read_text())
    env = {
        **account_passwords(),
        "FM_NATS_SERVER_NAME": "n1",
        "FM_NATS_STORE_DIR": str(tmp_path / "store"),
        "FM_NATS_LISTEN": "127.0.0.1:4222",
        "FM_NATS_MONITOR": "127.0.0.1:8222",
        "FM_NATS_CLUSTER_LISTEN": "127.0.0.1:6222",
        "FM_NATS_ROUTE_PASSWORD": "r",
        "FM_NATS_SYNC_INTERVAL": "always",
        **{f"FM_NATS_ROUTE_{i}": f"nats-route://route:r@127.0.0.1:{6221 + i}" for i in (1, 2, 3)},
    }
    checked = subprocess.run(
        [str(nats_server_binary()), "-c", str(tmp_path / name), "-t"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert "is valid" in checked.stderr + checked.stdout
