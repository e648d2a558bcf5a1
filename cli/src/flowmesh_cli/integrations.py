"""``flowmesh connectors``, ``actions`` and ``catalog``: what a workflow can reach and do.

Connectors and a tenant's own actions are written from a file (JSON or YAML, read as
``workflows apply`` reads one) and put whole (``PUT``): the file is the spec the API takes
(docs/connectors.md, docs/tenant-actions.md). A connector names its credentials by secret
name only, so nothing printed here is secret.
"""

from __future__ import annotations

import argparse
from typing import Any

from flowmesh_cli.documents import load, read_text
from flowmesh_cli.errors import EXIT_NOT_FOUND, EXIT_OK, CliError

__all__ = ["EXAMPLES", "actions", "add_commands", "catalog", "connectors"]

EXAMPLES = {
    "connectors list": "flowmesh connectors list",
    "connectors get": "flowmesh connectors get slack -o yaml",
    "connectors put": "flowmesh connectors put slack -f slack-connector.yaml",
    "connectors delete": "flowmesh connectors delete slack",
    "actions list": "flowmesh actions list",
    "actions get": "flowmesh actions get slack.post_message -o yaml",
    "actions versions": "flowmesh actions versions helpdesk.open_ticket",
    "actions put": "flowmesh actions put helpdesk.open_ticket -f open-ticket.yaml",
    "actions delete": "flowmesh actions delete helpdesk.open_ticket",
    "catalog list": "flowmesh catalog list --kind action --category notification",
    "catalog get": "flowmesh catalog get slack.post_message -o yaml",
}


def add_commands(commands: Any, command: Any) -> None:
    """The three command groups, added to the parser's ``commands``."""
    group = command(commands, "connectors", "put, list, show and delete connectors (admin)")
    sub = group.add_subparsers(dest="connectors_command", required=True, metavar="action")
    command(sub, "list", "list the tenant's connectors (every page)")
    for name, summary in (("get", "show a connector"), ("delete", "delete a connector")):
        command(sub, name, summary).add_argument("name")
    put = command(sub, "put", "create or replace a connector from a JSON or YAML spec file")
    put.add_argument("name")
    put.add_argument("-f", "--file", required=True, help="its spec ('-': stdin)")

    group = command(commands, "actions", "put, list, show and delete actions (editor)")
    sub = group.add_subparsers(dest="actions_command", required=True, metavar="action")
    command(sub, "list", "list the built-in actions and the tenant's own (every page)")
    get = command(sub, "get", "show an action (its current version, or --version N)")
    get.add_argument("name")
    get.add_argument("--version", type=int, metavar="N", help="this version of a tenant's")
    command(sub, "versions", "list a tenant action's versions, newest first").add_argument("name")
    put = command(sub, "put", "store the next version of a tenant's action from a spec file")
    put.add_argument("name")
    put.add_argument("-f", "--file", required=True, help="its spec ('-': stdin)")
    command(sub, "delete", "delete a tenant's action with every version").add_argument("name")

    group = command(commands, "catalog", "what a node can be: node types and actions")
    sub = group.add_subparsers(dest="catalog_command", required=True, metavar="action")
    listing = command(sub, "list", "list the catalog's entries (every page)")
    listing.add_argument("--kind", choices=("node", "action"))
    listing.add_argument("--category", help="only this category (notification, data ...)")
    get = command(sub, "get", "show an entry: its parameters' and output's schemas, example")
    get.add_argument("name", help="a node type (http) or an action (slack.post_message)")
    get.add_argument("--kind", choices=("node", "action"))


def _spec(args: argparse.Namespace, ctx: Any) -> dict[str, Any]:
    text = read_text(args.file, ctx.cwd, ctx.stdin)
    document = load(args.file, text)
    if not isinstance(document, dict):
        raise CliError(f"{args.file} is not a spec (a mapping)")
    return document


async def connectors(ctx: Any) -> int:
    args, client = ctx.args, ctx.client
    match args.connectors_command:
        case "list":
            ctx.show([item async for item in client.connectors.iter()])
        case "get":
            ctx.show(await client.connectors.get(args.name))
        case "put":
            ctx.show(await client.connectors.put(args.name, _spec(args, ctx)))
        case "delete":
            await client.connectors.delete(args.name)
            ctx.err.write(f"deleted connector {args.name}\n")
    return EXIT_OK


async def actions(ctx: Any) -> int:
    args, client = ctx.args, ctx.client
    match args.actions_command:
        case "list":
            ctx.show([item async for item in client.actions.iter()])
        case "get":
            ctx.show(await client.actions.get(args.name, version=args.version))
        case "versions":
            ctx.show((await client.actions.versions(args.name)).items)
        case "put":
            ctx.show(await client.actions.put(args.name, _spec(args, ctx)))
        case "delete":
            await client.actions.delete(args.name)
            ctx.err.write(f"deleted action {args.name}\n")
    return EXIT_OK


async def catalog(ctx: Any) -> int:
    args, client = ctx.args, ctx.client
    match args.catalog_command:
        case "list":
            filters = {"kind": args.kind, "category": args.category}
            ctx.show([item async for item in client.catalog.iter(**filters)])
        case "get":
            found = [
                item async for item in client.catalog.iter(kind=args.kind) if item.name == args.name
            ]
            if not found:
                raise CliError(f"the catalog has no entry {args.name}", code=EXIT_NOT_FOUND)
            ctx.show(found[0] if len(found) == 1 else found)
    return EXIT_OK
