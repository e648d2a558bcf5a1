"""Where an expression may read ``secrets`` (DESIGN section 12). Pure.

A secret leaves Flowmesh only in the request it is sent with: ``secrets.<NAME>`` may appear
in an ``http`` node's ``url``, ``headers``, ``query`` and ``body`` (a map's per-item ``http``
template included: it is an http call too), nowhere else. Anywhere else (a transform, a
condition, a switch, a publish, a task's or a workflow's input, a map's items, a
wait_for_event match, a delay, ``method`` or ``expect_status``, a concurrency key, a trigger
filter), a value computed from it (``bytes(...)``, ``size(...)``, ``startsWith(...)``) could
reach a stored output, an event or a log, where exact-value redaction does not see it.
Such a read is refused with ``SECRET_NOT_ALLOWED`` at its path.

Where a secret may be read, it is read as it is: ``{{ secrets.NAME }}`` (inside any text),
never a value computed from it (``{{ bytes(secrets.NAME) }}``, ``{{ size(...) }}``, a
comparison), which an error message naming the URL could carry where exact-value redaction
would not see it.

In ``url``, a secret is read only past the authority: in the path or the query, never in the
scheme, the user info, the host or the port. A host is sent to DNS resolvers and named in
connection errors, lowercased; so the literal text before the first expression that reads a
secret must already hold a scheme, ``://``, a host and the ``/`` or ``?`` that ends it.
"""

from __future__ import annotations

import re

from flowmesh_proto.catalog import SECRET_PARAMETERS
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.workflow import is_plain_secret_read
from flowmesh_registry.validation.problems import Problems
from flowmesh_shared.expressions import ExpressionError, Template

__all__ = [
    "SECRETS",
    "refuse_computed_secrets",
    "refuse_secret",
    "refuse_secret_before_path",
    "secrets_allowed",
]

#: The root an expression reads secrets through.
SECRETS = "secrets"
_WHERE = ", ".join(
    f"{type_name} node's {', '.join(sorted(names))}"
    for type_name, names in sorted(SECRET_PARAMETERS.items())
)

_COMPUTED = "a request sends a secret as it is ({{ secrets.NAME }}), not a value computed from it"
_BEFORE_PATH = (
    "secrets may appear in the path, query, headers and body only: write the scheme, "
    "'://', the host and the '/' or '?' after it before the first {{ secrets.NAME }}"
)
#: Literal text that settles the scheme and the authority: what follows is path or query.
_AUTHORITY_SETTLED = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#\\{}]+[/?]")


def secrets_allowed(type_name: str, parameter: str) -> bool:
    """Whether the parameter ``parameter`` of a ``type_name`` node may read ``secrets``."""
    return parameter in SECRET_PARAMETERS.get(type_name, frozenset())


def refuse_secret(path: str, problems: Problems) -> None:
    """Report a read of ``secrets`` at ``path``, where no secret may be read."""
    message = f"secrets may be read only in an {_WHERE} (the request they are sent with)"
    problems.add(path, ErrorCode.SECRET_NOT_ALLOWED, message)


def refuse_computed_secrets(
    path: str, found: Template | ExpressionError, problems: Problems
) -> None:
    """Report an expression of a template at ``path`` (where secrets may be read) that
    computes something from a secret instead of reading it as it is."""
    if isinstance(found, ExpressionError):
        return
    for expression in found.expressions:
        refs = expression.references
        reads = SECRETS in refs.variables and SECRETS not in refs.whole_values  # that: 4225
        if reads and not is_plain_secret_read(expression.source):
            problems.add(path, ErrorCode.SECRET_NOT_ALLOWED, _COMPUTED)
            return


def refuse_secret_before_path(
    path: str, found: Template | ExpressionError, problems: Problems
) -> None:
    """Report a ``url`` template at ``path`` that reads a secret before its literal text
    has settled the scheme and the authority (the host goes to DNS, lowercased)."""
    if isinstance(found, ExpressionError):
        return
    literal = ""
    for segment in found.segments:
        if isinstance(segment, str):
            literal += segment
        elif SECRETS in segment.references.variables:
            if not _AUTHORITY_SETTLED.match(literal):
                problems.add(path, ErrorCode.SECRET_NOT_ALLOWED, _BEFORE_PATH)
            return
        else:
            literal += "{}"  # unknown text: not a host, nor the end of one
