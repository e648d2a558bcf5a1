"""What a call can raise: :class:`FlowmeshError` and one subclass per kind of answer.

Every refusal of the gateway is an RFC 9457 problem; its ``code`` (``WORKFLOW_NOT_FOUND``,
``VALIDATION_FAILED`` ...), ``status``, ``detail`` and ``errors`` (each with its ``path``,
``code`` and ``message``) are on the exception. Branch on the class or on ``code``, never
on the message.
"""

from __future__ import annotations

from flowmesh_proto.errors import Problem, ProblemItem


class FlowmeshError(Exception):
    """The gateway refused or failed the request."""

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str = "",
        status: int | None = None,
        detail: str = "",
        errors: list[ProblemItem] | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(message or self.__doc__)
        self.code = code
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.request_id = request_id

    @property
    def message(self) -> str:
        """One line, whatever the gateway put in its detail."""
        return " ".join(str(self).split())


class ConfigError(FlowmeshError):
    """No usable gateway URL, tenant or API key."""


class ConnectionFailed(FlowmeshError):
    """The gateway cannot be reached."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the gateway at {url}: {reason}", code="CONNECTION_FAILED")
        self.url = url


class BadAnswer(FlowmeshError):
    """The gateway answered something this client cannot read."""


class ValidationFailed(FlowmeshError):
    """The request (its body, a parameter, a definition) is not valid: see ``errors``."""


class Unauthorized(FlowmeshError):
    """The credential is missing, unknown, revoked or invalid."""


class Forbidden(FlowmeshError):
    """The credential's role is too low, or it belongs to another tenant."""


class NotFound(FlowmeshError):
    """No such thing in this tenant."""


class Conflict(FlowmeshError):
    """The request conflicts with the current state (see ``code``)."""


class RateLimited(FlowmeshError):
    """A rate limit or quota is spent: ask again after ``retry_after`` seconds."""

    retry_after: float | None = None


class Unavailable(FlowmeshError):
    """A service behind the gateway did not answer in time (502, 503, 504): retry later."""


_BY_STATUS: dict[int, type[FlowmeshError]] = {
    400: ValidationFailed,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: Conflict,
    413: ValidationFailed,
    415: ValidationFailed,
    422: ValidationFailed,
    423: Conflict,
    429: RateLimited,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def from_problem(
    status: int, problem: Problem | None, text: str, retry_after: float | None = None
) -> FlowmeshError:
    """The exception for an answer of ``status`` with ``problem`` (or, if none, ``text``)."""
    kind = _BY_STATUS.get(status, FlowmeshError)
    if problem is None:
        error = kind(f"{status}: {text[:200]}".strip(": "), status=status, detail=text[:200])
    else:
        said = problem.detail or problem.title
        first = (
            f" (at {problem.errors[0].path}: {problem.errors[0].message})"
            if (problem.errors and problem.errors[0].message not in said)
            else ""
        )
        error = kind(
            f"{status} {problem.code}: {said}{first}",
            code=problem.code,
            status=status,
            detail=problem.detail,
            errors=list(problem.errors),
            request_id=problem.request_id,
        )
    if isinstance(error, RateLimited):
        error.retry_after = retry_after
    return error
