"""Portable workflow documents: JSON or YAML, the same document export writes and import reads.

YAML is read as YAML 1.2 with its core schema, not as PyYAML's YAML 1.1: only ``true``/
``false`` (any case of the first letter, or all capitals) are booleans, ``null``/``~``/
nothing is null, integers are decimal, ``0o`` octal or ``0x`` hexadecimal, floats are
decimal (``.inf``, ``.nan``). So ``NO``, ``yes``, ``on`` stay strings, ``12:30:00`` is no
sexagesimal number, ``010`` is ten, ``2024-01-01`` is no date; ``1.10`` is the number 1.1,
as it is in JSON (quote it to keep the text). Only the tags of JSON values are read (no
``!!binary``, ``!!set``, ``!!timestamp``); a key may appear once in a mapping; aliases are
refused (no "billion laughs"): a document is data, never a program nor a bomb.

Export writes YAML that both YAML 1.2 and YAML 1.1 readers read back as the same values:
a string that either would take for something else is quoted.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec
import yaml
from yaml._yaml import CParser
from yaml.constructor import ConstructorError, SafeConstructor

CONTENT_TYPES = {"json": "application/json", "yaml": "application/yaml"}

_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")
_NULL = re.compile(r"~|null|Null|NULL|")
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
#: The YAML 1.2 core schema's implicit resolution of plain scalars: (tag, pattern, first
#: characters). The order matters: ``10`` is an int before it is a float.
CORE_SCHEMA: list[tuple[str, re.Pattern[str], list[str]]] = [
    ("tag:yaml.org,2002:bool", _BOOL, list("tTfF")),
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789")),
]


class DocumentError(ValueError):
    """The document is not well-formed JSON or YAML; ``line`` and ``column`` (1-based) say
    where, when the reader knows."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


def _scalar(loader: SafeConstructor, node: Any, pattern: re.Pattern[str], what: str) -> str:
    text = loader.construct_scalar(node)
    if not isinstance(text, str) or not pattern.fullmatch(text):
        raise ConstructorError(None, None, f"{text!r} is not {what} in YAML 1.2", node.start_mark)
    return text


def _construct_bool(loader: SafeConstructor, node: Any) -> bool:
    return _scalar(loader, node, _BOOL, "a boolean").lower() == "true"


def _construct_int(loader: SafeConstructor, node: Any) -> int:
    text = _scalar(loader, node, _INT, "an integer")
    try:
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text, 10)  # 010 is ten: no YAML 1.1 octal
    except ValueError as exc:  # more digits than Python converts (4,300)
        raise ConstructorError(None, None, f"integer too long: {exc}", node.start_mark) from exc


def _construct_float(loader: SafeConstructor, node: Any) -> float:
    text = _scalar(loader, node, re.compile(f"{_FLOAT.pattern}|{_INT.pattern}"), "a float")
    if text.lower().endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text.lower() == ".nan":
        return float("nan")
    return float(int(text, 0)) if text.startswith(("0o", "0x")) else float(text)


class _Yaml12Loader(yaml.CSafeLoader):
    """PyYAML's safe loader on libyaml's parser (an order of magnitude faster than the
    pure-Python one, which took 0.7 s of the registry's loop for 100 KiB of YAML), with the
    YAML 1.2 core schema, JSON's tags only, no aliases (:func:`_refuse_aliases`), no key
    twice in a mapping."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        if len(mapping) != len(node.value):
            keys = [self.construct_object(key, deep=True) for key, _ in node.value]
            second = next(i for i, key in enumerate(keys) if key in keys[:i])
            raise ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"the key {keys[second]!r} appears twice",
                node.value[second][0].start_mark,  # where it appears again
            )
        return mapping


_Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in CORE_SCHEMA:
    _Yaml12Loader.add_implicit_resolver(_tag, re.compile(f"^(?:{_pattern.pattern})$"), _first)
_Yaml12Loader.yaml_constructors = {
    "tag:yaml.org,2002:null": SafeConstructor.construct_yaml_null,
    "tag:yaml.org,2002:bool": _construct_bool,
    "tag:yaml.org,2002:int": _construct_int,
    "tag:yaml.org,2002:float": _construct_float,
    "tag:yaml.org,2002:str": SafeConstructor.construct_yaml_str,
    "tag:yaml.org,2002:seq": SafeConstructor.construct_yaml_seq,
    "tag:yaml.org,2002:map": SafeConstructor.construct_yaml_map,
    None: SafeConstructor.construct_undefined,
}


class _PortableDumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting a string that a YAML 1.2 reader (as well as a 1.1
    reader) would take for a number, a boolean or null."""


for _tag, _pattern, _first in CORE_SCHEMA:
    _PortableDumper.add_implicit_resolver(_tag, re.compile(f"^(?:{_pattern.pattern})$"), _first)


def parse_document(text: str, fmt: str) -> Any:
    """Decode ``text`` as ``fmt`` ("json" or "yaml") into plain data."""
    return read_document(text, fmt)[0]


def read_document(text: str, fmt: str) -> tuple[Any, yaml.Node | None]:
    """Decode ``text`` as ``fmt`` into plain data and, for YAML, the node tree it was read
    from (whose marks say where each value is written); None for JSON."""
    if fmt == "json":
        try:
            return msgspec.json.decode(text.encode()), None
        except msgspec.DecodeError as exc:
            raise DocumentError(
                f"not valid JSON: {exc}", *_json_error_position(text, str(exc))
            ) from exc
    if fmt == "yaml":
        loader = _Yaml12Loader(text)
        try:
            _refuse_deep(text)
            node = _refuse_aliases(loader.get_single_node())
            return (loader.construct_document(node) if node is not None else None), node
        except yaml.YAMLError as exc:
            message = f"not valid YAML: {_yaml_error_message(exc)}"
            raise DocumentError(message, *_yaml_error_position(text, exc)) from exc
        except RecursionError as exc:
            raise DocumentError("YAML nesting is too deep") from exc
        finally:
            loader.dispose()
    raise DocumentError(f"unknown format {fmt!r}: use json or yaml")


#: Deeper YAML is refused as a document (the validator's own limit, 64, is far below).
MAX_YAML_DEPTH = 256


_OPENS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSES = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _refuse_deep(text: str) -> None:
    """Refuse ``text`` when its collections nest deeper than MAX_YAML_DEPTH, reading only
    libyaml's events (its parser keeps its own stack). libyaml's composer recurses in C
    once per level: 30,000 ``[`` (30 KB) overflow a worker thread's stack and end the
    process, so the depth is known before anything is composed."""
    parser = CParser(text)
    depth = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, _OPENS):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    mark = event.start_mark
                    if mark is None:
                        raise DocumentError("YAML nesting is too deep")
                    raise DocumentError("YAML nesting is too deep", mark.line + 1, mark.column + 1)
            elif isinstance(event, _CLOSES):
                depth -= 1
    finally:
        parser.dispose()


def _refuse_aliases(root: yaml.Node | None) -> yaml.Node | None:
    """``root``, refused when any node of it is reached twice (libyaml composes an alias as
    the anchored node itself: shared, not copied, so composing stays linear; the walk
    stops at the first one, at the anchor's place) or lies deeper than MAX_YAML_DEPTH."""
    seen: set[int] = set()
    stack = [(root, 0)] if root is not None else []
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not allowed", node.start_mark
            )
        if depth > MAX_YAML_DEPTH:
            raise RecursionError(depth)
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend(((key, depth + 1), (value, depth + 1)))
    return root


def compose_json(text: str) -> yaml.Node | None:
    """The node tree of JSON text, read by the YAML loader (alias-free); None when the
    text is not well-formed. JSON is YAML's flow style: every tab in well-formed JSON lies
    between tokens (a string cannot hold one raw), so tabs are read as the spaces YAML wants."""
    text = text.replace("\t", " ")
    loader = _Yaml12Loader(text)
    try:
        _refuse_deep(text)
        return _refuse_aliases(loader.get_single_node())
    except (yaml.YAMLError, RecursionError, DocumentError):
        return None
    finally:
        loader.dispose()


def _yaml_error_message(error: yaml.YAMLError) -> str:
    """PyYAML's explanation on one line, without its quote of the text (the position is
    given apart): ``while parsing a flow sequence at line 4, column 11: expected ...``."""
    if not isinstance(error, yaml.MarkedYAMLError) or not error.problem:
        return str(error)
    context = error.context or ""
    mark = error.context_mark
    if context and mark is not None:
        context += f" at line {mark.line + 1}, column {mark.column + 1}"
    return f"{context}: {error.problem}" if context else str(error.problem)


def _yaml_error_position(text: str, error: yaml.YAMLError) -> tuple[int | None, int | None]:
    """Line and column (1-based) of PyYAML's mark of the problem, or of its character."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is not None:
        lines = text.split("\n")
        if mark.line >= len(lines):  # libyaml marks the end of the stream past the last line
            return len(lines), len(lines[-1]) + 1
        return mark.line + 1, mark.column + 1
    if isinstance(error, yaml.reader.ReaderError) and isinstance(error.position, int):
        before = text[: error.position]
        return before.count("\n") + 1, error.position - (before.rfind("\n") + 1) + 1
    return None, None


_AT_BYTE = re.compile(r"\(byte (\d+)\)$")


def _json_error_position(text: str, message: str) -> tuple[int, int]:
    """Line and column (1-based, in characters) of msgspec's ``(byte N)``; the end of the
    text when the input was cut short."""
    data = text.encode()
    match = _AT_BYTE.search(message)
    offset = min(int(match.group(1)), len(data)) if match else len(data)
    before = data[:offset].decode(errors="replace")
    line_start = before.rfind("\n") + 1
    return before.count("\n") + 1, len(before) - line_start + 1


def render_document(data: Any, fmt: str) -> str:
    if fmt == "yaml":
        return str(
            yaml.dump(data, Dumper=_PortableDumper, sort_keys=False, allow_unicode=True, width=100)
        )
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def content_hash(definition: Any) -> str:
    """A stable hash of a definition's content (key order does not matter)."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
