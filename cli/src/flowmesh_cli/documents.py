"""Reading a workflow file: JSON, or YAML 1.2 (``yes``/``NO``/``on`` are strings, not
booleans; no sexagesimal or ``0777`` octal numbers), as the registry reads it."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, TextIO

import msgspec
import yaml

from flowmesh_cli.errors import CliError

_INT = re.compile(r"^[-+]?(?:[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
)
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _Yaml12Loader(yaml.SafeLoader):
    """pyyaml's safe loader with the YAML 1.2 core schema's booleans and numbers."""


_Yaml12Loader.yaml_implicit_resolvers = {
    key: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float")
    ]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", _BOOL, "tTfF"),
    ("tag:yaml.org,2002:int", _INT, "-+0123456789"),
    ("tag:yaml.org,2002:float", _FLOAT, "-+0123456789."),
):
    _Yaml12Loader.add_implicit_resolver(_tag, _regexp, list(_first))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    return int(text, 0) if text.lstrip("+-").startswith(("0o", "0x")) else int(text, 10)


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def read_text(name: str, cwd: Path, stdin: TextIO | None = None) -> str:
    """The text of file ``name`` (``-``: the standard input)."""
    if name == "-":
        return (stdin or sys.stdin).read()
    path = cwd / name
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise CliError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def is_yaml(name: str, text: str) -> bool:
    """YAML unless the file is named ``.json`` or its text starts like JSON."""
    if name.endswith(".json"):
        return False
    return not text.lstrip().startswith(("{", "["))


def load(name: str, text: str) -> Any:
    """The document's value; :class:`CliError` naming the file and the place."""
    if not is_yaml(name, text):
        try:
            return msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            raise CliError(f"{name} is not JSON: {exc}") from exc
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise CliError(f"{name} is not YAML: {' '.join(str(exc).split())}") from exc


def json_value(text: str, source: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise CliError(f"{source} is not JSON: {exc}") from exc
