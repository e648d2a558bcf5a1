"""What each API command does: call the client, print the answer (``-o``), return 0."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, TextIO

import msgspec

from flowmesh_cli import integrations
from flowmesh_cli.documents import is_yaml, json_value, load, read_text
from flowmesh_cli.errors import EXIT_API_ERROR, EXIT_OK, CliError
from flowmesh_cli.output import Format, render
from flowmesh_cli.watch import DisplayFactory, watch
from flowmesh_client import Client
from flowmesh_proto.http import RunAccepted
from flowmesh_proto.runs import StepBatch, StepLog

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
Displays = DisplayFactory


class Context(msgspec.Struct, kw_only=True):
    """What a command works with."""

    client: Client
    args: argparse.Namespace
    cwd: Path
    out: TextIO
    err: TextIO
    stdin: TextIO
    display_for: Displays

    @property
    def fmt(self) -> Format:
        output: Format = self.args.output
        return output

    def show(self, value: Any) -> None:
        self.out.write(render(value, self.fmt))
        self.out.flush()


async def workflow_id(client: Client, name_or_id: str) -> str:
    """A workflow's id from its id (kept as it is) or its name (looked up)."""
    if _UUID.match(name_or_id):
        return name_or_id
    return (await client.workflows.find(name_or_id)).id


async def workflows(ctx: Context) -> int:
    args, client = ctx.args, ctx.client
    match args.workflows_command:
        case "apply":
            text = read_text(args.file, ctx.cwd, ctx.stdin)
            document = load(args.file, text)
            if not isinstance(document, dict):
                raise CliError(f"{args.file} is not a workflow document (a mapping)")
            if is_yaml(args.file, text):  # the registry's judgement, with lines and columns
                answer = await client.workflows.validate(text, yaml=True)
                if not answer.valid:
                    return _invalid(ctx, args.file, answer.errors)
            ctx.show(await client.workflows.apply(document))
        case "list":
            items = []
            async for item in client.workflows.iter(q=args.q, tags=args.tag):
                items.append(item)
                if args.limit is not None and len(items) >= args.limit:
                    break
            ctx.show(items)
        case "get":
            ctx.show(await client.workflows.get(await workflow_id(client, args.workflow)))
        case "export":
            found = await workflow_id(client, args.workflow)
            document = await client.workflows.export(found, format=args.format)
            ctx.out.write(document if document.endswith("\n") else document + "\n")
        case "validate":
            text = read_text(args.file, ctx.cwd, ctx.stdin)
            yaml = is_yaml(args.file, text)
            answer = await client.workflows.validate(
                text if yaml else load(args.file, text), yaml=yaml
            )
            if not answer.valid:
                return _invalid(ctx, args.file, answer.errors)
            if ctx.fmt == "table":
                ctx.out.write(f"{args.file}: valid\n")
            else:
                ctx.show(answer)
        case "delete":
            found = await workflow_id(client, args.workflow)
            await client.workflows.delete(found)
            ctx.err.write(f"deleted workflow {found}\n")
    return EXIT_OK


def _invalid(ctx: Context, name: str, errors: list[Any]) -> int:
    if ctx.fmt == "table":
        ctx.err.write(f"flowmesh: {name} is not a valid workflow ({len(errors)} problems):\n")
        for item in errors:
            where = f"{name}:{item.line}:{item.column}: " if item.line else ""
            ctx.err.write(f"  {where}{item.path}: {item.code}: {item.message}\n")
    else:
        ctx.show({"valid": False, "errors": errors})
    return EXIT_API_ERROR


async def runs(ctx: Context) -> int:
    args, client = ctx.args, ctx.client
    match args.runs_command:
        case "list":
            found = await workflow_id(client, args.workflow) if args.workflow else None
            status = args.status.split(",") if args.status else None
            items = []
            async for item in client.runs.iter(workflow_id=found, status=status):
                items.append(item)
                if len(items) >= args.limit:
                    break
            ctx.show(items)
        case "get":
            ctx.show(await client.runs.get(args.run_id))
        case "watch":
            return await watch(client, args.run_id, ctx.display_for)
        case "cancel":
            ctx.show(await client.runs.cancel(args.run_id, args.reason))
        case "retry":
            accepted = await client.runs.retry(args.run_id)
            return await _started(ctx, accepted)
        case "logs":
            async for event in client.runs.follow(args.run_id):
                for each in event.events if isinstance(event, StepBatch) else [event]:
                    if isinstance(each, StepLog):
                        at = each.at.strftime("%H:%M:%S.%f")[:-3]
                        ctx.out.write(f"{at} {each.node_id} {each.level} {each.message}\n")
                        ctx.out.flush()
    return EXIT_OK


async def run(ctx: Context) -> int:
    args, client = ctx.args, ctx.client
    if args.input_file is not None:
        source = "the standard input" if args.input_file == "-" else args.input_file
        value = json_value(read_text(args.input_file, ctx.cwd, ctx.stdin), source)
    elif args.input is not None:
        value = json_value(args.input, "--input")
    else:
        value = {}
    found = await workflow_id(client, args.workflow_id)
    accepted = await client.workflows.execute(
        found, value, version=args.workflow_version, idempotency_key=args.idempotency_key
    )
    assert isinstance(accepted, RunAccepted)
    return await _started(ctx, accepted)


async def _started(ctx: Context, accepted: RunAccepted) -> int:
    if ctx.fmt == "table":
        ctx.out.write(accepted.run_id + "\n")
        ctx.out.flush()
    else:
        ctx.show(accepted)
    if not ctx.args.watch:
        return EXIT_OK
    return await watch(ctx.client, accepted.run_id, ctx.display_for)


async def events(ctx: Context) -> int:
    args = ctx.args
    data = json_value(args.data, "--data")
    ctx.show(await ctx.client.events.publish(args.type, data, id=args.id, source=args.source))
    return EXIT_OK


async def keys(ctx: Context) -> int:
    args, client = ctx.args, ctx.client
    match args.keys_command:
        case "list":
            ctx.show((await client.api_keys.list()).items)
        case "create":
            ctx.show(await client.api_keys.create(args.name, args.role))
        case "revoke":
            await client.api_keys.revoke(args.key_id)
            ctx.err.write(f"revoked key {args.key_id}\n")
    return EXIT_OK


async def secrets(ctx: Context) -> int:
    args, client = ctx.args, ctx.client
    match args.secrets_command:
        case "set":
            if ctx.stdin.isatty():
                ctx.err.write(f"value of {args.name} (then Enter and Ctrl-D): ")
                ctx.err.flush()
            value = ctx.stdin.read().removesuffix("\n")
            if not value:
                raise CliError("no value on the standard input: pipe the secret's value in")
            ctx.show(await client.secrets.set(args.name, value))
        case "list":
            ctx.show((await client.secrets.list()).items)
        case "delete":
            ctx.show(await client.secrets.delete(args.name))
    return EXIT_OK


COMMANDS = {
    "workflows": workflows,
    "runs": runs,
    "run": run,
    "events": events,
    "keys": keys,
    "secrets": secrets,
    "connectors": integrations.connectors,
    "actions": integrations.actions,
    "catalog": integrations.catalog,
}
