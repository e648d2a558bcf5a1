"""Portable workflow documents: JSON or YAML, the same document export writes and import reads.

YAML is read with a safe loader that also refuses aliases (no "billion laughs"): a
document is data, never a program nor a bomb.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec
import yaml

CONTENT_TYPES = {"json": "application/json", "yaml": "application/yaml"}


class DocumentError(ValueError):
    """The document is not well-formed JSON or YAML."""


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


# Timestamps stay strings: a document's values are JSON values.
_NoAliasLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_document(text: str, fmt: str) -> Any:
    """Decode ``text`` as ``fmt`` ("json" or "yaml") into plain data."""
    if fmt == "json":
        try:
            return msgspec.json.decode(text.encode())
        except msgspec.DecodeError as exc:
            raise DocumentError(f"not valid JSON: {exc}") from exc
    if fmt == "yaml":
        try:
            return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a safe, alias-free loader
        except yaml.YAMLError as exc:
            raise DocumentError(f"not valid YAML: {exc}") from exc
        except RecursionError as exc:
            raise DocumentError("YAML nesting is too deep") from exc
    raise DocumentError(f"unknown format {fmt!r}: use json or yaml")


def render_document(data: Any, fmt: str) -> str:
    if fmt == "yaml":
        return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def content_hash(definition: Any) -> str:
    """A stable hash of a definition's content (key order does not matter)."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
