"""The ``flowmesh`` command line's grammar: commands, options, help with examples."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any, NoReturn, TextIO

from flowmesh_cli import integrations, natscommand, natsusers
from flowmesh_cli.errors import EXIT_USAGE
from flowmesh_cli.output import FORMATS

DESCRIPTION = """\
Flowmesh from the command line: workflows, runs (watched live), events, API keys, secrets,
connectors, actions and the catalog.

The gateway, tenant and API key come from --url/--tenant/--key, else FLOWMESH_URL,
FLOWMESH_TENANT and FLOWMESH_API_KEY, else $FLOWMESH_HOME/dev.json (written by `make dev`).

Exit codes: 0 ok, 1 the gateway refused or failed the request, 2 usage, 3 the gateway
cannot be reached, 4 not found, 5 credentials refused (401/403), 6 the run did not succeed,
130 interrupted.
"""

EXAMPLES = {
    "workflows apply": "flowmesh workflows apply -f hello.yaml",
    "workflows list": "flowmesh workflows list --q hello -o json",
    "workflows get": "flowmesh workflows get hello -o yaml",
    "workflows export": "flowmesh workflows export hello --format yaml > hello.yaml",
    "workflows validate": "flowmesh workflows validate -f hello.yaml",
    "workflows delete": "flowmesh workflows delete hello",
    "runs list": "flowmesh runs list --workflow hello --status failed,timed_out",
    "runs get": "flowmesh runs get 0197a1b2-... -o json",
    "runs watch": "flowmesh runs watch 0197a1b2-...",
    "runs cancel": "flowmesh runs cancel 0197a1b2-... --reason 'wrong input'",
    "runs retry": "flowmesh runs retry 0197a1b2-... --watch",
    "runs logs": "flowmesh runs logs 0197a1b2-...",
    "run": 'flowmesh run hello --input \'{"name": "Ada"}\' --watch',
    "watch": "flowmesh watch 0197a1b2-...",
    "events publish": "flowmesh events publish order.created --data '{\"order\": 42}'",
    "keys list": "flowmesh keys list",
    "keys create": "flowmesh keys create ci --role operator   # the key is shown once",
    "keys revoke": "flowmesh keys revoke 0197a1b2-...",
    "secrets set": 'printf %s "$TOKEN" | flowmesh secrets set SHOP_TOKEN',
    "secrets list": "flowmesh secrets list",
    "secrets delete": "flowmesh secrets delete SHOP_TOKEN",
    **integrations.EXAMPLES,
    "completion": "flowmesh completion bash > /etc/bash_completion.d/flowmesh",
    "nats-user": "flowmesh nats-user acme --role worker --queue shipping",
}


class ParserExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Parser(argparse.ArgumentParser):
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
        raise ParserExit(status)

    def error(self, message: str) -> NoReturn:
        self.print_usage(self._err)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


#: The global options' defaults, set after parsing: a default given to argparse would be
#: copied into every subcommand (they share the option objects) and reset an option given
#: before the command.
DEFAULTS = {"url": None, "tenant": None, "key": None, "retries": 5, "plain": False}


def parse(grammar: Parser, argv: Sequence[str]) -> argparse.Namespace:
    """The arguments, with every global option set (given, else its default)."""
    args = grammar.parse_args(argv)
    for name, value in {**DEFAULTS, "output": "table"}.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args


def build(out: TextIO, err: TextIO) -> Parser:
    common = Parser(add_help=False, out=out, err=err)
    # Defaults are SUPPRESS here so an option given before the command is not reset after it.
    common.add_argument("--url", default=argparse.SUPPRESS, help="the gateway's base URL")
    common.add_argument("--tenant", default=argparse.SUPPRESS, help="the tenant id")
    common.add_argument(
        "--key", default=argparse.SUPPRESS, help="an API key (prefer FLOWMESH_API_KEY)"
    )
    common.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default=argparse.SUPPRESS,
        help="how answers are printed (default table)",
    )
    common.add_argument(
        "--retries",
        type=int,
        default=argparse.SUPPRESS,
        help="reconnects in a row before giving up on a lost event stream (default 5)",
    )
    common.add_argument(
        "--plain",
        action="store_true",
        default=argparse.SUPPRESS,
        help="watch: one line per change instead of a live table (the default without a terminal)",
    )
    parser = Parser(
        prog="flowmesh",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
        out=out,
        err=err,
    )
    parser.add_argument("--version", action="version", version=version("flowmeshctl"))
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(where: Any, name: str, summary: str, full: str = "", **kwargs: Any) -> Parser:
        key = name if where is commands else f"{where.dest.removesuffix('_command')} {name}"
        epilog = f"example:\n  {EXAMPLES[key]}" if key in EXAMPLES else None
        made: Parser = where.add_parser(
            name,
            parents=[common],
            help=summary,
            description=full or summary,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            out=out,
            err=err,
            **kwargs,
        )
        return made

    _workflows(commands, command)
    _runs(commands, command)
    run_cmd = command(
        commands,
        "run",
        "execute a workflow (by name or id) and print the run id",
        "Execute a workflow and print the new run's id (then watch it with --watch).",
    )
    _run_options(run_cmd)
    watch_cmd = command(
        commands,
        "watch",
        "show a run's steps live until it ends",
        "Show a run's steps live until it ends; exit 0 if it succeeded, 6 if not.",
    )
    watch_cmd.add_argument("run_id")
    _small_tags(commands, command)
    integrations.add_commands(commands, command)
    completion = command(commands, "completion", "print a shell completion script (bash or zsh)")
    completion.add_argument("shell", choices=("bash", "zsh"))
    users_cmd = commands.add_parser(
        "nats-user",
        help="mint NATS credentials limited to one tenant (see deploy/nats)",
        description=natsusers.__doc__,
        epilog=f"example:\n  {EXAMPLES['nats-user']}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        out=out,
        err=err,
    )
    natscommand.add_arguments(users_cmd)
    return parser


def _workflows(commands: Any, command: Any) -> None:
    group = command(commands, "workflows", "create, change, read and delete workflows")
    sub = group.add_subparsers(dest="workflows_command", required=True, metavar="action")
    apply = command(sub, "apply", "create a workflow, or update the one of its name")
    apply.add_argument("-f", "--file", required=True, help="a JSON or YAML file ('-': stdin)")
    listing = command(sub, "list", "list workflows (every page)")
    listing.add_argument("--q", help="search names and descriptions")
    listing.add_argument("--tag", action="append", help="only those with this tag (repeatable)")
    listing.add_argument("--limit", type=int, help="at most this many")
    for name, summary in (("get", "show a workflow"), ("delete", "delete a workflow")):
        one = command(sub, name, summary)
        one.add_argument("workflow", help="a workflow's name or id")
    export = command(sub, "export", "print a workflow's document (to apply elsewhere)")
    export.add_argument("workflow", help="a workflow's name or id")
    export.add_argument("--format", choices=("yaml", "json"), default="yaml")
    validate = command(sub, "validate", "check a workflow file without storing it")
    validate.add_argument("-f", "--file", required=True, help="a JSON or YAML file ('-': stdin)")


def _runs(commands: Any, command: Any) -> None:
    group = command(commands, "runs", "list, show, watch, cancel and retry runs")
    sub = group.add_subparsers(dest="runs_command", required=True, metavar="action")
    listing = command(sub, "list", "list runs, newest first")
    listing.add_argument("--workflow", help="only this workflow's (name or id)")
    listing.add_argument("--status", help="only these statuses (comma-separated)")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    for name, summary in (
        ("get", "show a run with its steps"),
        ("watch", "show a run's steps live until it ends (exit 6 if it did not succeed)"),
        ("logs", "print a run's log lines, live until it ends"),
    ):
        one = command(sub, name, summary)
        one.add_argument("run_id")
    cancel = command(sub, "cancel", "cancel a run")
    cancel.add_argument("run_id")
    cancel.add_argument("--reason", default="", help="recorded with the cancel")
    retry = command(sub, "retry", "retry a failed, cancelled or timed-out run as a new run")
    retry.add_argument("run_id")
    retry.add_argument("--watch", action="store_true", help="then watch the new run")


def _run_options(run_cmd: Parser) -> None:
    run_cmd.add_argument("workflow_id", metavar="workflow", help="a workflow's name or id")
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


def _small_tags(commands: Any, command: Any) -> None:
    events = command(commands, "events", "publish trigger events")
    sub = events.add_subparsers(dest="events_command", required=True, metavar="action")
    publish = command(sub, "publish", "publish an event (event triggers and waits see it)")
    publish.add_argument("type", help="the event's type, e.g. order.created")
    publish.add_argument("--data", metavar="JSON", default="null", help="its data, as JSON")
    publish.add_argument("--id", help="its id: the same id is stored once")
    publish.add_argument("--source", default="", help="where it comes from")
    keys = command(commands, "keys", "list, create and revoke API keys (admin)")
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="action")
    command(sub, "list", "list the tenant's API keys")
    create = command(sub, "create", "create an API key (printed once)")
    create.add_argument("name")
    create.add_argument(
        "--role", choices=("viewer", "operator", "editor", "admin"), default="viewer"
    )
    revoke = command(sub, "revoke", "revoke an API key")
    revoke.add_argument("key_id")
    secrets = command(commands, "secrets", "set, list and delete secrets (admin)")
    sub = secrets.add_subparsers(dest="secrets_command", required=True, metavar="action")
    put = command(
        sub,
        "set",
        "set a secret; its value is read from the standard input, never from arguments",
    )
    put.add_argument("name")
    command(sub, "list", "list the secrets' names (values are never shown)")
    delete = command(sub, "delete", "delete a secret")
    delete.add_argument("name")
