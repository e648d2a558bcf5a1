"""The ``flowmesh`` command against a real stack (registry, gateway and executor of this
module's own): every command once, ``-o json`` parsed, ``-o yaml`` and tables read, and
each bad input a clear line on stderr with its documented exit code."""

from __future__ import annotations

import io
import json
import socket
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
import yaml

from flowmesh_cli.main import run_cli
from flowmesh_client import Client, StreamPolicy
from flowmesh_proto.http import RunAccepted
from tests.helpers import until
from tests.integration.harness import TenantHandle

from .clientstack import BROKEN_YAML, GREETING_YAML, Stack, greeting, stack, tenant, unique

pytestmark = pytest.mark.integration
__all__ = ["stack", "tenant"]


class Result(msgspec.Struct):
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


class Cli:
    def __init__(self, stack: Stack, tenant: TenantHandle, cwd: Path) -> None:
        self.env = {
            "FLOWMESH_URL": stack.url,
            "FLOWMESH_TENANT": tenant.id,
            "FLOWMESH_API_KEY": tenant.admin_key,
        }
        self.cwd = cwd

    async def __call__(self, *argv: str, stdin: str = "", **env: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = await run_cli(
            argv,
            env={**self.env, **env},
            cwd=self.cwd,
            out=out,
            err=err,
            stdin=io.StringIO(stdin),
            policy=StreamPolicy(first_delay=0.05, max_delay=0.2),
        )
        return Result(code, out.getvalue(), err.getvalue())


async def settled(cli: Cli, run_id: str, status: str) -> None:
    """Until the run history (a projection of the events ``watch`` saw) says ``status``."""

    async def now() -> bool:
        shown = await cli("runs", "get", run_id, "-o", "json")
        return shown.code == 0 and shown.json()["status"] == status  # type: ignore[index]

    await until(now, timeout=10, message=f"run {run_id} {status} in the history")


@pytest.fixture
def cli(stack: Stack, tenant: TenantHandle, tmp_path: Path) -> Cli:
    return Cli(stack, tenant, tmp_path)


async def test_workflows_apply_list_get_export_validate_delete(cli: Cli) -> None:
    name = unique("hello")
    (cli.cwd / "hello.yaml").write_text(GREETING_YAML.format(name=name))
    applied = await cli("workflows", "apply", "-f", "hello.yaml", "-o", "json")
    assert applied.code == 0, applied.err
    made = applied.json()
    assert isinstance(made, dict) and (made["name"], made["version"]) == (name, 1)
    again = await cli("-o", "yaml", "workflows", "apply", "-f", "hello.yaml")
    assert (again.code, yaml.safe_load(again.out)["version"]) == (0, 1)  # unchanged
    listed = await cli("workflows", "list", "--q", name)
    header, row = listed.out.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "VERSION"] and row.split()[:3] == [
        made["id"],
        name,
        "1",
    ]
    got = await cli("workflows", "get", name, "-o", "json")
    assert got.json()["id"] == made["id"]  # type: ignore[index]
    exported = await cli("workflows", "export", name)
    assert exported.code == 0 and yaml.safe_load(exported.out)["name"] == name
    (cli.cwd / "exported.yaml").write_text(exported.out)
    valid = await cli("workflows", "validate", "-f", "exported.yaml")
    assert (valid.code, valid.out) == (0, "exported.yaml: valid\n")
    deleted = await cli("workflows", "delete", name)
    assert (deleted.code, deleted.err) == (0, f"deleted workflow {made['id']}\n")
    gone = await cli("workflows", "get", made["id"])
    assert gone.code == 4 and gone.err.startswith("flowmesh: 404 WORKFLOW_NOT_FOUND")


async def test_run_watch_and_the_runs_commands(
    cli: Cli, stack: Stack, tenant: TenantHandle
) -> None:
    name = unique("run")
    (cli.cwd / "run.json").write_text(json.dumps(greeting(name)))
    assert (await cli("workflows", "apply", "-f", "run.json")).code == 0
    ran = await cli("run", name, "--input", '{"name": "Ada"}', "--watch")
    assert ran.code == 0, ran.err
    run_id, *lines = ran.out.splitlines()
    assert lines[-1].startswith(f"run {run_id} succeeded")
    watched = await cli("watch", run_id)
    assert (watched.code, watched.out.splitlines()) == (0, lines)
    again = await cli("runs", "watch", run_id)
    assert again.out.splitlines() == lines

    async def listed() -> list[str]:  # the history is a projection: it may lag a little
        result = await cli("runs", "list", "--workflow", name, "-o", "json")
        return [r["id"] for r in result.json()]  # type: ignore[union-attr, index]

    assert await until(listed, timeout=10) == [run_id]
    await settled(cli, run_id, "succeeded")
    shown = await cli("runs", "get", run_id)
    assert shown.out.splitlines()[0].split()[:4] == ["ID", "WORKFLOW", "VERSION", "STATUS"]
    assert [line.split()[:2] for line in shown.out.split("\n\n")[1].splitlines()[1:]] == [
        ["shape", "succeeded"],
        ["greet", "succeeded"],
        ["done", "succeeded"],
    ]
    logs = await cli("runs", "logs", run_id)
    assert (logs.code, logs.err) == (0, "")
    refused = await cli("runs", "retry", run_id)
    assert refused.code == 1 and "409 WORKFLOW_NOT_EXECUTABLE" in refused.err
    async with Client(stack.url, tenant.id, tenant.admin_key, env={}, cwd=cli.cwd) as client:
        made = await client.workflows.find(name)
        later = await client.workflows.execute(made.id, {}, delay=timedelta(minutes=5))
    assert isinstance(later, RunAccepted)
    cancelled = await cli("runs", "cancel", later.run_id, "--reason", "not today", "-o", "json")
    assert cancelled.json() == {"run_id": later.run_id, "status": "cancelling"}


async def test_a_failed_run_is_exit_6_and_retried(cli: Cli) -> None:
    name = unique("fails")
    nodes = [{"id": "call", "type": "http", "parameters": {"url": "http://127.0.0.1:9/x"}}]
    (cli.cwd / "f.json").write_text(json.dumps({"name": name, "nodes": nodes, "edges": []}))
    assert (await cli("workflows", "apply", "-f", "f.json")).code == 0
    ran = await cli("run", name, "--watch")
    assert ran.code == 6, ran.out + ran.err
    run_id = ran.out.splitlines()[0]
    await settled(cli, run_id, "failed")
    retried = await cli("runs", "retry", run_id, "-o", "json")
    assert retried.code == 0 and retried.json()["status"] == "queued"  # type: ignore[index]


async def test_events_keys_and_secrets(cli: Cli) -> None:
    published = await cli("events", "publish", "order.created", "--data", '{"n": 1}', "--id", "o-1")
    assert (published.code, published.out) == (0, "ID\no-1\n")
    created = await cli("keys", "create", "ci", "--role", "operator", "-o", "json")
    key = created.json()
    assert isinstance(key, dict) and key["key"].startswith("fm_") and key["role"] == "operator"
    listed = await cli("keys", "list", "-o", "yaml")
    assert key["id"] in [k["id"] for k in yaml.safe_load(listed.out)]
    revoked = await cli("keys", "revoke", key["id"])
    assert (revoked.code, revoked.err) == (0, f"revoked key {key['id']}\n")
    value = "v3ry-s3cret-value"
    results = [
        await cli("secrets", "set", "SHOP_TOKEN", stdin=value + "\n"),
        await cli("secrets", "list", "-o", "json"),
        await cli("secrets", "list", "-o", "yaml"),
        await cli("secrets", "delete", "SHOP_TOKEN"),
    ]
    assert [r.code for r in results] == [0, 0, 0, 0]
    assert [s["name"] for s in results[1].json()] == ["SHOP_TOKEN"]  # type: ignore[union-attr, index]
    assert all(value not in r.out + r.err for r in results)
    empty = await cli("secrets", "set", "OTHER", stdin="")
    assert empty.code == 2 and "no value on the standard input" in empty.err


async def test_completion_and_help(cli: Cli) -> None:
    bash = await cli("completion", "bash")
    assert bash.code == 0 and "complete -o default -F _flowmesh_complete flowmesh" in bash.out
    assert '"workflows") words="apply delete export get list validate' in bash.out
    zsh = await cli("completion", "zsh")
    assert zsh.out.startswith("#compdef flowmesh")
    helped = await cli("secrets", "set", "--help")
    assert helped.code == 0 and "example:\n  printf %s" in helped.out


async def test_bad_input_is_one_clear_line_and_its_exit_code(
    cli: Cli, tenant: TenantHandle
) -> None:
    unknown = await cli("run", "no-such-workflow")
    assert (unknown.code, unknown.out) == (4, "")
    assert unknown.err.startswith("flowmesh: 404 WORKFLOW_NOT_FOUND")
    (cli.cwd / "broken.yaml").write_text(BROKEN_YAML.format(name=unique("broken")))
    broken = await cli("workflows", "apply", "-f", "broken.yaml")
    assert broken.code == 1
    assert "broken.yaml:7:9: edges[0].to: INVALID_EDGES:" in broken.err
    (cli.cwd / "mangled.yaml").write_text("name: [unclosed\n")
    mangled = await cli("workflows", "apply", "-f", "mangled.yaml")
    assert mangled.code == 2 and mangled.err.startswith("flowmesh: mangled.yaml is not YAML")
    wrong = await cli("workflows", "list", FLOWMESH_API_KEY=f"fm_{tenant.id}_wrong")
    assert (wrong.code, wrong.out) == (5, "")
    assert wrong.err.startswith("flowmesh: 401 UNAUTHENTICATED")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    unreachable = await cli("workflows", "list", "--url", url, "--retries", "0")
    assert unreachable.code == 3
    assert unreachable.err.startswith(f"flowmesh: cannot reach the gateway at {url}")
    usage = await cli("workflows", "apply")
    assert usage.code == 2 and "the following arguments are required: -f/--file" in usage.err


async def test_connectors_actions_and_the_catalog(cli: Cli) -> None:
    (cli.cwd / "hook.yaml").write_text(
        "base_url: https://hooks.example.com\nauth: {kind: bearer, secret: HOOK_TOKEN}\n"
    )
    put = await cli("connectors", "put", "hooks", "-f", "hook.yaml", "-o", "json")
    assert put.code == 0, put.err
    assert put.json()["missing_secrets"] == ["HOOK_TOKEN"]  # type: ignore[index]
    listed = await cli("connectors", "list", "-o", "json")
    assert [c["name"] for c in listed.json()] == ["hooks"]  # type: ignore[union-attr]
    shown = await cli("connectors", "get", "hooks", "-o", "yaml")
    assert yaml.safe_load(shown.out)["auth"] == {"kind": "bearer", "secret": "HOOK_TOKEN"}
    (cli.cwd / "bad.yaml").write_text(
        "base_url: https://u:p@hooks.example.com\nauth: {kind: none}\n"
    )
    refused = await cli("connectors", "put", "hooks", "-f", "bad.yaml")
    assert refused.code == 1 and "base_url" in refused.err

    spec = {
        "description": "Pings a hook.",
        "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
        "request": {"method": "POST", "path": "/ping/{{ input.id }}"},
    }
    (cli.cwd / "ping.json").write_text(json.dumps(spec))
    stored = await cli("actions", "put", "ops.ping", "-f", "ping.json", "-o", "json")
    assert stored.code == 0, stored.err
    assert stored.json()["version"] == 1  # type: ignore[index]
    spec["description"] = "Pings a hook, again."
    (cli.cwd / "ping.json").write_text(json.dumps(spec))
    assert (await cli("actions", "put", "ops.ping", "-f", "ping.json")).code == 0
    versions = await cli("actions", "versions", "ops.ping", "-o", "json")
    assert [v["version"] for v in versions.json()] == [2, 1]  # type: ignore[union-attr]
    first = await cli("actions", "get", "ops.ping", "--version", "1", "-o", "json")
    assert first.json()["spec"]["description"] == "Pings a hook."  # type: ignore[index]
    every = await cli("actions", "list", "-o", "json")
    names = [a["name"] for a in every.json()]  # type: ignore[union-attr]
    assert "ops.ping" in names and "slack.post_message" in names

    entry = await cli("catalog", "get", "ops.ping", "-o", "json")
    assert entry.json()["kind"] == "action"  # type: ignore[index]
    notify = await cli(
        "catalog", "list", "--kind", "action", "--category", "notification", "-o", "json"
    )
    assert {e["name"] for e in notify.json()} == {  # type: ignore[union-attr]
        "email.send",
        "slack.post_message",
        "webhook.post",
    }
    table = await cli("catalog", "list", "--kind", "node")
    assert table.code == 0 and "wait_for_event" in table.out
    missing = await cli("catalog", "get", "no.such")
    assert missing.code == 4 and "no.such" in missing.err

    assert (await cli("actions", "delete", "ops.ping")).code == 0
    gone = await cli("actions", "get", "ops.ping")
    assert gone.code == 4
    assert (await cli("connectors", "delete", "hooks")).code == 0
    assert (await cli("connectors", "get", "hooks")).code == 4
