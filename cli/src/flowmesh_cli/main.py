"""The ``flowmesh`` command: parse the arguments, resolve the target, run one command.

``main()`` is the console script; ``run_cli(argv, ...)`` does the work with everything it
touches passed in (environment, working directory, streams, stream policy, rich console),
so tests drive it whole in their own event loop.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn, TextIO

import msgspec
from rich.console import Console

from flowmesh_cli import commands, completion, parser
from flowmesh_cli.errors import EXIT_INTERRUPTED, EXIT_OK, CliError, exit_code
from flowmesh_cli.natscommand import nats_user
from flowmesh_cli.progress import Progress
from flowmesh_cli.watch import Display, LiveTable, PlainLines, watch
from flowmesh_client import Client, FlowmeshError, RetryPolicy, StreamPolicy

#: Problems of one refused request listed under its line.
MAX_PROBLEMS_SHOWN = 20


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
    stdin: TextIO | None = None,
    policy: StreamPolicy | None = None,
    retry: RetryPolicy | None = None,
    console: Console | None = None,
) -> int:
    """Run one ``flowmesh`` command line; its exit code."""
    grammar = parser.build(out, err)
    try:
        args = parser.parse(grammar, argv)
    except parser.ParserExit as exc:
        return exc.code
    if args.command == "nats-user":
        return nats_user(args, cwd, out, err)
    if args.command == "completion":
        out.write(completion.script(grammar, args.shell))
        return EXIT_OK
    if console is None:  # a live table only on a real terminal, whatever FORCE_COLOR says
        console, live = Console(file=out, highlight=False), out.isatty()
    else:
        live = console.is_terminal
    plain = args.plain or not live or args.output != "table"

    def display_for(progress: Progress) -> Display:
        return PlainLines(progress, out, err) if plain else LiveTable(progress, console)

    try:
        stream = msgspec.structs.replace(policy or StreamPolicy(), retries=args.retries)
        client = Client(
            args.url,
            args.tenant,
            args.key,
            env=env,
            cwd=cwd,
            stream=stream,
            retry=retry,
            user_agent=f"flowmeshctl/{version('flowmeshctl')}",
        )
        async with client:
            if args.command == "watch":
                return await watch(client, args.run_id, display_for)
            context = commands.Context(
                client=client,
                args=args,
                cwd=cwd,
                out=out,
                err=err,
                stdin=stdin or sys.stdin,
                display_for=display_for,
            )
            return await commands.COMMANDS[args.command](context)
    except CliError as exc:
        return _failed(err, exc.message, exc.exit_code)
    except FlowmeshError as exc:
        return _failed(err, exc.message, exit_code(exc), problems=exc.errors)


def _failed(err: TextIO, message: str, code: int, *, problems: Sequence[Any] = ()) -> int:
    """One line saying what failed, then one line per problem the API named at a path."""
    err.write(f"flowmesh: {message}\n")
    for problem in problems[:MAX_PROBLEMS_SHOWN]:
        err.write(f"  {problem.path}: {problem.code}: {problem.message}\n")
    if len(problems) > MAX_PROBLEMS_SHOWN:
        err.write(f"  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more\n")
    err.flush()
    return code
