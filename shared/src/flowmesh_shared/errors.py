"""Flowmesh's own errors: each carries an :class:`ErrorCode` and becomes a :class:`Problem`.

An error's docstring is its default message. Driver errors (asyncpg, nats) are translated
into these at the edges (``raise Unavailable(...) from exc``); one mapping at each surface
(RPC reply, HTTP middleware) turns them into problem bodies.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from flowmesh_proto.errors import ErrorCode, Problem, ProblemItem, problem


class FlowmeshError(Exception):
    """Flowmesh could not complete the request."""

    default_code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(
        self,
        code: ErrorCode | None = None,
        detail: str = "",
        *,
        errors: list[ProblemItem] | None = None,
    ) -> None:
        self.code: ErrorCode = code if code is not None else self.default_code
        self.detail: str = detail or _default_message(type(self))
        self.errors: list[ProblemItem] = list(errors or [])
        super().__init__(self.detail)

    def to_problem(self, request_id: str = "") -> Problem:
        """The RFC 9457 body of this error (never a traceback)."""
        return problem(self.code, self.detail, errors=self.errors, request_id=request_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}, {self.detail!r})"


def _default_message(cls: type[BaseException]) -> str:
    for klass in cls.__mro__:
        doc = klass.__doc__
        if doc:
            return doc.strip().split("\n", 1)[0]
    return cls.__name__


class _KnownError(FlowmeshError):
    """A common case with its own code: the detail comes first, the code may be narrowed."""

    def __init__(
        self,
        detail: str = "",
        *,
        errors: list[ProblemItem] | None = None,
        code: ErrorCode | None = None,
    ) -> None:
        super().__init__(code, detail, errors=errors)


class NotFound(_KnownError):
    """The resource was not found."""

    default_code = ErrorCode.NOT_FOUND


class Conflict(_KnownError):
    """The request conflicts with the current state of the resource."""

    default_code = ErrorCode.CONFLICT


class ValidationFailed(_KnownError):
    """The request is not valid."""

    default_code = ErrorCode.VALIDATION_FAILED


class Unauthenticated(_KnownError):
    """The credentials are missing or not valid."""

    default_code = ErrorCode.UNAUTHENTICATED


class Forbidden(_KnownError):
    """The caller may not do this."""

    default_code = ErrorCode.FORBIDDEN


class Unavailable(_KnownError):
    """A service Flowmesh depends on is not available; try again later."""

    default_code = ErrorCode.UNAVAILABLE


class InternalError(_KnownError):
    """An unexpected error occurred."""

    default_code = ErrorCode.INTERNAL


class RemoteError(FlowmeshError):
    """Another service answered with an error."""

    def __init__(self, remote: Problem) -> None:
        code = ErrorCode.__members__.get(remote.code, code_for_status(remote.status))
        super().__init__(code, remote.detail or remote.title, errors=list(remote.errors))
        self.problem = remote

    def to_problem(self, request_id: str = "") -> Problem:
        """The remote problem as received, with our request id when it carried none."""
        if request_id and not self.problem.request_id:
            return msgspec.structs.replace(self.problem, request_id=request_id)
        return self.problem


def code_for_status(status: int) -> ErrorCode:
    """The plain code of an HTTP status, for problems whose code we do not know."""
    for code in ErrorCode:
        if code.http_status == status and code.num % 10 == 0 and code.num // 10 == status:
            return code
    return ErrorCode.INTERNAL
