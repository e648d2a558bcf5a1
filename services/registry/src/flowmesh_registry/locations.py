"""Where a problem is written: the line and column of a JSON path's value in a document.

The validator names each problem by a JSON path (``nodes[2].parameters.url``,
``triggers[0]["odd key"]``); an editor wants the place in the text. :class:`DocumentMap`
walks the node tree PyYAML composed (with the project's alias-free loader, so no alias can
make the walk large: it is bounded by the document's own size) and reads the start mark of
the value the path names. A path that names nothing written (a missing required key, a
msgspec ``[...]`` for "some key of this mapping") falls back to its nearest ancestor that is
written: a node without ``type`` is found at the node.

Where a value starts: a scalar or a flow collection (``{...}``, ``[...]``, every JSON value)
at its first character; a block mapping or list written under a key at that key (the line
``parameters:``), since its first entry may be lines below. Lines and columns are 1-based
and count characters (Unicode code points). Pure: text in, positions out.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec
import yaml

from flowmesh_proto.errors import ProblemItem
from flowmesh_registry.documents import DocumentError, compose_json, read_document

#: The path of the whole document.
DOCUMENT = "$"

PathStep = str | int


class Position(NamedTuple):
    """A place in a document's text: 1-based line and column."""

    line: int
    column: int


def split_path(path: str) -> list[PathStep]:
    """The steps of a validator's path: member names (str) and list indexes (int). Parsing
    stops at the first step it cannot read (``[...]``): the steps before it still locate."""
    steps: list[PathStep] = []
    text = path[1:] if path.startswith(DOCUMENT) else path
    i = 0
    while i < len(text):
        if text[i] == "[":
            step, i = _bracket(text, i)
            if step is None:
                break
            steps.append(step)
            continue
        start = i + 1 if text[i] == "." else i
        end = start
        while end < len(text) and text[end] not in ".[":
            end += 1
        if end == start:
            break
        steps.append(text[start:end])
        i = end
    return steps


def _bracket(text: str, i: int) -> tuple[PathStep | None, int]:
    """The step ``[3]`` or ``["key"]`` starting at ``text[i]``, and where the next begins."""
    if text.startswith('["', i):
        end = i + 2
        while end < len(text) and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        try:
            key = msgspec.json.decode(text[i + 1 : end + 1].encode(), type=str)
        except msgspec.DecodeError:
            return None, i
        return (key, end + 2) if text.startswith("]", end + 1) else (None, i)
    end = text.find("]", i)
    digits = text[i + 1 : end] if end > i else ""
    return (int(digits), end + 1) if digits.isdigit() else (None, i)


class DocumentMap:
    """The positions of a document's values by JSON path. Built from a YAML document's node
    tree, or from JSON text (composed only when a position is first asked for)."""

    def __init__(self, root: yaml.Node | None = None, *, json_text: str | None = None) -> None:
        self._root = root
        self._json_text = json_text
        #: Each mapping's keys, indexed when it is first walked: a document of 12,000
        #: problems in one 12,000-key mapping is placed in linear time, not in 5 s.
        self._keys: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}

    @classmethod
    def of(cls, text: str, fmt: str) -> DocumentMap:
        """The map of ``text`` (``fmt`` "json" or "yaml"); empty when it is not well-formed."""
        if fmt == "json":
            return cls(json_text=text)
        try:
            return cls(read_document(text, "yaml")[1])
        except DocumentError:
            return cls()

    @property
    def root(self) -> yaml.Node | None:
        if self._root is None and self._json_text is not None:
            self._root, self._json_text = compose_json(self._json_text), None
        return self._root

    def position(self, path: str) -> Position | None:
        """Where the value at ``path`` (or its nearest written ancestor) starts; None when
        the document could not be read at all."""
        node = self.root
        if node is None:
            return None
        mark = node.start_mark
        for step in split_path(path):
            found = self._child(node, step)
            if found is None:
                break
            key, node = found
            block = isinstance(node, yaml.CollectionNode) and not node.flow_style
            mark = key.start_mark if key is not None and block else node.start_mark
        return Position(mark.line + 1, mark.column + 1)

    def locate(self, problems: list[ProblemItem]) -> list[ProblemItem]:
        """``problems``, each with the line and column of its path."""
        located = []
        for problem in problems:
            where = self.position(problem.path)
            if where is not None:
                problem = msgspec.structs.replace(problem, line=where.line, column=where.column)
            located.append(problem)
        return located

    def _child(self, node: yaml.Node, step: PathStep) -> tuple[yaml.Node | None, yaml.Node] | None:
        """(the key node, the value node) of ``step`` in ``node``; None when it has none.
        A key written twice (JSON allows it) is found where it is first written."""
        if isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            return (None, node.value[step]) if step < len(node.value) else None
        if isinstance(node, yaml.MappingNode):
            keys = self._keys.get(id(node))
            if keys is None:
                keys = self._keys[id(node)] = {}
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode):
                        keys.setdefault(key.value, (key, value))
            return keys.get(str(step))
        return None


def locate(text: str, fmt: str, path: str) -> Position | None:
    """Where ``path``'s value is written in ``text``: :meth:`DocumentMap.position`."""
    return DocumentMap.of(text, fmt).position(path)


def syntax_problem(error: DocumentError, code: str) -> ProblemItem:
    """The one problem of a document that cannot be read, at ``$`` and where it went wrong."""
    return ProblemItem(
        path=DOCUMENT, code=code, message=str(error), line=error.line, column=error.column
    )
