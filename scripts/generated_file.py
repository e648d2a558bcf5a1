"""What each ``scripts/*_reference.py`` does with the text it renders: write the file, or
with ``--check`` say whether the committed one is current (exit 1 when it is stale)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def write_or_check(
    description: str,
    render: Callable[[], str],
    output: Path,
    root: Path,
    command: str,
    argv: list[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    shown = output.relative_to(root)
    if args.check:
        if not output.exists() or output.read_text() != text:
            print(f"{shown} is stale: run `{command}`", file=sys.stderr)
            return 1
        print(f"{shown} is current")
        return 0
    output.write_text(text)
    print(f"wrote {shown}")
    return 0
