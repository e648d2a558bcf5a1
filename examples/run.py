"""Run one example against the stack ``make dev`` started.

    uv run python examples/run.py <name>        # e.g. order-pipeline
    uv run python examples/run.py --list

Reads ``$FLOWMESH_HOME/dev.json`` (``FLOWMESH_HOME`` defaults to ``.flowmesh``, relative
to the working directory: run it from the repository's root). Each example is a folder
``examples/<name>/`` with its workflow, a README and ``example.py``, whose
``async def main(flowmesh, folder) -> bool`` imports the workflow, starts it and says
whether it ended as it should.

Exit codes: 0 the example's runs ended as they should; 1 they did not; 2 the example could
not run (unknown name, no stack, a refused request: the message says which); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from flowmesh_examples import ExampleError, Flowmesh, Stack

from flowmesh_client import Client

HERE = Path(__file__).resolve().parent


def names() -> list[str]:
    return sorted(path.parent.name for path in HERE.glob("*/example.py"))


def load(name: str) -> ModuleType:
    path = HERE / name / "example.py"
    spec = importlib.util.spec_from_file_location(f"examples_{name.replace('-', '_')}", path)
    if spec is None or spec.loader is None:
        raise ExampleError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def run(name: str) -> int:
    stack = Stack.load(os.environ, Path.cwd())
    example = load(name)
    async with Client(stack.gateway_url, stack.tenant, stack.api_key) as client:
        ok = await example.main(Flowmesh(client, stack), HERE / name)
    print(f"example {name}: {'done' if ok else 'did NOT end as expected'}", flush=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="examples/run.py",
        description="Run a Flowmesh example against `make dev` ($FLOWMESH_HOME/dev.json).",
    )
    parser.add_argument("name", nargs="?", help=f"one of: {', '.join(names())}")
    parser.add_argument("--list", action="store_true", help="list the examples")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(names()))
        return 0
    if args.name not in names():
        given = f"unknown example {args.name!r}" if args.name else "no example named"
        print(f"examples/run.py: {given}; choose one of: {', '.join(names())}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args.name))
    except ExampleError as exc:
        print(f"examples/run.py: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
