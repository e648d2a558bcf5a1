"""Error codes of the contract (DESIGN section 7) and the problem payload.

The same :class:`Problem` travels in registry replies and in HTTP problem+json bodies.
"""

from __future__ import annotations

import enum

import msgspec


class ErrorCode(enum.Enum):
    """Each code with its number and its HTTP status."""

    def __init__(self, num: int, http_status: int) -> None:
        self.num = num
        self.http_status = http_status

    INVALID_NODES = (4220, 422)
    INVALID_EDGES = (4221, 422)
    CIRCULAR_DEPENDENCY = (4222, 422)
    ORPHANED_NODE = (4223, 422)
    MISSING_VARIABLE = (4224, 422)
    INVALID_VARIABLE_TYPE = (4225, 422)
    EXPRESSION_TOO_COSTLY = (4226, 422)
    SECRET_NOT_ALLOWED = (4227, 422)
    WORKFLOW_LOCKED = (4231, 423)
    LOCK_ACQUISITION_FAILED = (4232, 409)
    LOCK_NOT_OWNED = (4233, 409)
    WORKFLOW_NOT_EXECUTABLE = (4241, 409)
    EXECUTION_IN_PROGRESS = (4242, 409)
    VALIDATION_STATUS_INVALID = (4243, 409)
    RUN_NOT_ACTIVE = (4244, 409)
    TENANT_MISMATCH = (4034, 403)
    CROSS_TENANT_ACCESS_DENIED = (4035, 403)
    CSRF_TOKEN_INVALID = (4036, 403)
    INVALID_EXPORT_FORMAT = (4251, 400)
    IMPORT_VALIDATION_FAILED = (4252, 422)
    WORKFLOW_NOT_FOUND = (4041, 404)
    WORKFLOW_DISABLED = (4042, 409)
    WORKFLOW_NAME_TAKEN = (4091, 409)
    CONNECTOR_LIMIT_REACHED = (4092, 409)
    ACTION_LIMIT_REACHED = (4093, 409)
    # The plain ones every API has.
    BAD_REQUEST = (4000, 400)
    UNAUTHENTICATED = (4010, 401)
    INVALID_SIGNATURE = (4011, 401)
    FORBIDDEN = (4030, 403)
    NOT_FOUND = (4040, 404)
    METHOD_NOT_ALLOWED = (4050, 405)
    CONFLICT = (4090, 409)
    PRECONDITION_FAILED = (4120, 412)
    PAYLOAD_TOO_LARGE = (4130, 413)
    UNSUPPORTED_MEDIA_TYPE = (4150, 415)
    VALIDATION_FAILED = (4200, 422)
    RATE_LIMITED = (4290, 429)
    INTERNAL = (5000, 500)
    UNAVAILABLE = (5030, 503)
    TIMEOUT = (5040, 504)


#: Codes a definition problem can carry (validation reports only these, plus limits).
DEFINITION_CODES = frozenset(
    {
        ErrorCode.INVALID_NODES,
        ErrorCode.INVALID_EDGES,
        ErrorCode.CIRCULAR_DEPENDENCY,
        ErrorCode.ORPHANED_NODE,
        ErrorCode.MISSING_VARIABLE,
        ErrorCode.INVALID_VARIABLE_TYPE,
        ErrorCode.EXPRESSION_TOO_COSTLY,
        ErrorCode.SECRET_NOT_ALLOWED,
        ErrorCode.VALIDATION_FAILED,
        ErrorCode.PAYLOAD_TOO_LARGE,
    }
)


class ProblemItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One problem: where (a JSON path such as ``nodes[2].parameters.url``), what, why.

    When the problem is with a document sent as text (a YAML or JSON body of import, of
    validate or update with ``Content-Type: application/yaml``), ``line`` and ``column``
    (1-based, counting characters) say where the value at ``path`` is written, or where the
    text stopped being well-formed; they are left out when there is no such text.
    """

    path: str
    code: str
    message: str
    line: int | None = None
    column: int | None = None


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details, with Flowmesh's ``code``, ``code_num`` and ``errors``."""

    title: str
    status: int
    code: str
    code_num: int
    detail: str = ""
    type: str = "about:blank"
    errors: list[ProblemItem] = []
    request_id: str = ""


def problem(
    code: ErrorCode,
    detail: str = "",
    *,
    errors: list[ProblemItem] | None = None,
    request_id: str = "",
) -> Problem:
    """Build the problem for ``code``; a 422 with several problems takes its code from the first."""
    items = sorted(errors or [], key=lambda item: item.path)
    first = code
    if items and code is ErrorCode.VALIDATION_FAILED:
        first = ErrorCode[items[0].code] if items[0].code in ErrorCode.__members__ else code
    return Problem(
        title=first.name.replace("_", " ").capitalize(),
        status=first.http_status,
        code=first.name,
        code_num=first.num,
        detail=detail,
        type=f"https://flowmesh.dev/problems/{first.name.lower().replace('_', '-')}",
        errors=items,
        request_id=request_id,
    )
