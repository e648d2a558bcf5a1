"""The ``flowmesh`` command: parse the arguments, resolve the target, run one command.

``main()`` is the console script; ``run_cli(argv, ...)`` does the work with everything it
touches passed in (environment, working directory, output streams, stream policy, rich
console), so tests drive it whole in their own event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn, TextIO

import aiohttp
import msgspec
from rich.console import Console

from flowmesh_cli import natsusers
from flowmesh_cli.config import resolve
from flowmesh_cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CliError
from flowmesh_cli.gateway import Gateway, StreamPolicy
from flowmesh_cli.progress import Progress
from flowmesh_cli.watch import Display, LiveTable, PlainLines, watch
from flowmesh_proto.http import ExecuteBody

_DESCRIPTION = """\
Run Flowmesh workflows and watch their steps live.

The gateway, tenant and API key come from --url/--tenant/--key, else FLOWMESH_URL,
FLOWMESH_TENANT and FLOWMESH_API_KEY, else $FLOWMESH_HOME/dev.json (written by `make dev`).
Exit codes: 0 done (the run succeeded), 1 the run failed, was cancelled or timed out,
2 usage, configuration or credentials, 3 not found, 4 the gateway is unreachable or failing.
"""


def main() -> NoReturn:
    """The ``flowmesh`` console script."""
    try:
        code = asyncio.run(
            run_cli(sys.argv[1:], env=os.environ, cwd=Path.cwd(), out=sys.stdout, err=sys.stderr)
        )
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    sys.exit(code)


async def run_cli(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    out: TextIO,
    err: TextIO,
    policy: StreamPolicy | None = None,
    console: Console | None = None,
) -> int:
    """Run one ``flowmesh`` command line; its exit code."""
    try:
        args = _parser(out, err).parse_args(argv)
    except _ParserExit as exc:
        return exc.code
    if args.command == "nats-user":
        return nats_user(args, cwd, out, err)
    try:
        target = resolve({"--url": args.url, "--tenant": args.tenant, "--key": args.key}, env, cwd)
        body = _execute_body(args, cwd) if args.command == "run" else None
        policy = msgspec.structs.replace(policy or StreamPolicy(), retries=args.retries)
        if console is None:  # a live table only on a real terminal, whatever FORCE_COLOR says
            console, live = Console(file=out, highlight=False), out.isatty()
        else:
            live = console.is_terminal
        plain = args.plain or not live

        def display_for(progress: Progress) -> Display:
            return PlainLines(progress, out, err) if plain else LiveTable(progress, console)

        user_agent = f"flowmesh-cli/{version('flowmesh-cli')}"
        async with aiohttp.ClientSession(headers={"User-Agent": user_agent}) as session:
            gateway = Gateway(session, target)
            if body is None:
                return await watch(gateway, args.run_id, policy, display_for)
            accepted = await gateway.execute(args.workflow_id, body)
            out.write(accepted.run_id + "\n")
            out.flush()
            if not args.watch:
                return EXIT_OK
            return await watch(gateway, accepted.run_id, policy, display_for)
    except CliError as exc:
        err.write(f"flowmesh: {exc.message}\n")
        err.flush()
        return exc.exit_code


def nats_user(args: argparse.Namespace, cwd: Path, out: TextIO, err: TextIO) -> int:
    """``flowmesh nats-user``: mint, remove or list a tenant's NATS users."""
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


def _execute_body(args: argparse.Namespace, cwd: Path) -> ExecuteBody:
    if args.input_file is not None:
        source = "the standard input" if args.input_file == "-" else args.input_file
        text = sys.stdin.read() if args.input_file == "-" else _read(cwd / args.input_file)
        value = _json(text, source)
    elif args.input is not None:
        value = _json(args.input, "--input")
    else:
        value = {}
    return ExecuteBody(
        input=value, idempotency_key=args.idempotency_key, version=args.workflow_version
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise CliError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def _json(text: str, source: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise CliError(f"{source} is not JSON: {exc}") from exc


# --- arguments ---


class _ParserExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """An argument parser that writes to the given streams and raises instead of exiting."""

    def __init__(self, *args: Any, out: TextIO, err: TextIO, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._out, self._err = out, err

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            (self._out if file is None or file is sys.stdout else self._err).write(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self._err.write(message)
        raise _ParserExit(status)

    def error(self, message: str) -> NoReturn:
        self.print_usage(self._err)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser(out: TextIO, err: TextIO) -> _Parser:
    common = _Parser(add_help=False, out=out, err=err)
    # Defaults are SUPPRESS here so an option given before the command is not reset after it.
    common.add_argument("--url", default=argparse.SUPPRESS, help="the gateway's base URL")
    common.add_argument("--tenant", default=argparse.SUPPRESS, help="the tenant id")
    common.add_argument(
        "--key", default=argparse.SUPPRESS, help="an API key (prefer FLOWMESH_API_KEY)"
    )
    common.add_argument(
        "--retries",
        type=int,
        default=argparse.SUPPRESS,
        help="reconnects in a row before giving up on a lost stream (default 5)",
    )
    common.add_argument(
        "--plain",
        action="store_true",
        default=argparse.SUPPRESS,
        help="one line per change instead of a live table (the default without a terminal)",
    )
    parser = _Parser(
        prog="flowmesh",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
        out=out,
        err=err,
    )
    parser.add_argument("--version", action="version", version=version("flowmesh-cli"))
    parser.set_defaults(url=None, tenant=None, key=None, retries=5, plain=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    watch_cmd = commands.add_parser(
        "watch",
        parents=[common],
        help="show a run's steps live until it ends",
        description="Show a run's steps live until it ends; exit 0 if it succeeded, 1 if not.",
        out=out,
        err=err,
    )
    watch_cmd.add_argument("run_id")
    run_cmd = commands.add_parser(
        "run",
        parents=[common],
        help="execute a workflow and print the run id",
        description="Execute a workflow and print the new run's id (then watch it with --watch).",
        out=out,
        err=err,
    )
    run_cmd.add_argument("workflow_id")
    given = run_cmd.add_mutually_exclusive_group()
    given.add_argument("--input", metavar="JSON", help="the run's input, as JSON")
    given.add_argument(
        "--input-file", metavar="FILE", help="a file holding the input as JSON ('-': stdin)"
    )
    run_cmd.add_argument(
        "--workflow-version", type=int, metavar="N", help="run version N, not the current one"
    )
    run_cmd.add_argument("--idempotency-key", help="the same key starts the run only once")
    run_cmd.add_argument("--watch", action="store_true", help="then watch it, as `watch` does")
    users_cmd = commands.add_parser(
        "nats-user",
        help="mint NATS credentials limited to one tenant (see deploy/nats)",
        description=natsusers.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        out=out,
        err=err,
    )
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
    return parser
