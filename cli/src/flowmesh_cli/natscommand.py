"""``flowmesh nats-user``: its arguments and what it does (the files: :mod:`natsusers`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

import msgspec

from flowmesh_cli import natsusers
from flowmesh_cli.errors import EXIT_OK, CliError


def add_arguments(users_cmd: argparse.ArgumentParser) -> None:
    users_cmd.add_argument("tenant")
    users_cmd.add_argument(
        "--role",
        choices=natsusers.ROLES,
        default="publisher",
        help="publisher: events in; reader: run events out; worker: serves task queues"
        " (default publisher)",
    )
    users_cmd.add_argument("--name", help="the user's name (default <tenant>-<role>)")
    users_cmd.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="QUEUE",
        help="a task queue the worker serves (once per queue; a worker needs one)",
    )
    defaults = natsusers.AccountLimits()
    for flag, default, what in [
        ("--max-connections", defaults.max_connections, "connections"),
        ("--max-subscriptions", defaults.max_subscriptions, "subscriptions"),
        ("--max-payload", defaults.max_payload, "bytes in one message"),
    ]:
        users_cmd.add_argument(
            flag,
            type=int,
            metavar="N",
            help=f"the tenant account's limit of {what}, over all its users (default {default})",
        )
    users_cmd.add_argument(
        "--dir",
        default="deploy/nats",
        help="the NATS configuration directory holding tenants.conf (default deploy/nats)",
    )
    action = users_cmd.add_mutually_exclusive_group()
    action.add_argument("--remove", metavar="USER", help="remove this user of the tenant")
    action.add_argument("--list", action="store_true", help="list the tenant's users")
    action.add_argument(
        "--limits",
        action="store_true",
        help="only set the tenant account's limits (--max-*), minting no user",
    )
    users_cmd.add_argument("--json", action="store_true", help="print JSON (for scripts)")


def nats_user(args: argparse.Namespace, cwd: Path, out: TextIO, err: TextIO) -> int:
    """Mint, remove or list a tenant's NATS users."""
    directory = cwd / args.dir
    try:
        if args.list:
            users = natsusers.listing(directory, args.tenant)
            if args.json:
                shown = [
                    {"user": u.user, "role": u.role, "created_at": u.created_at} for u in users
                ]
                out.write(msgspec.json.encode(shown).decode() + "\n")
            else:
                out.writelines(f"{u.user}\t{u.role}\t{u.created_at}\n" for u in users)
        elif args.remove is not None:
            natsusers.remove(directory, args.tenant, args.remove)
            err.write(f"removed {args.remove!r}; reload the server: nats-server --signal reload\n")
        elif args.limits:
            limits = natsusers.set_limits(directory, args.tenant, _limits(args))
            err.write(f"{limits}; reload the server: nats-server --signal reload\n")
        else:
            minted = natsusers.mint(
                directory,
                args.tenant,
                args.role,
                args.name,
                queues=args.queue,
                limits=_limits(args),
            )
            if args.json:
                out.write(msgspec.json.encode(minted).decode() + "\n")
            else:
                natsusers.report(minted, directory, out)
    except CliError as exc:
        err.write(f"flowmesh: {exc.message}\n")
        return exc.exit_code
    return EXIT_OK


def _limits(args: argparse.Namespace) -> dict[str, int]:
    """The limits the --max-* flags change (the others stay as they are)."""
    names = ("max_connections", "max_subscriptions", "max_payload")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}
