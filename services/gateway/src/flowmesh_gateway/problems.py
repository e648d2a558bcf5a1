"""One middleware turns every failure into RFC 9457 problem+json; no traceback ever leaves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
import structlog
from aiohttp import web

from flowmesh_proto.errors import ErrorCode, Problem, problem
from flowmesh_shared.errors import FlowmeshError

log = structlog.get_logger("flowmesh.gateway")

PROBLEM_JSON = "application/problem+json"
REQUEST_ID_KEY = web.RequestKey("request_id", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    412: ErrorCode.PRECONDITION_FAILED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION_FAILED,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.UNAVAILABLE,
}

_encoder = msgspec.json.Encoder()


def problem_response(body: Problem, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=body.status,
        body=_encoder.encode(body),
        content_type=PROBLEM_JSON,
        headers=headers,
    )


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = str(request.get(REQUEST_ID_KEY, ""))
    try:
        return await handler(request)
    except FlowmeshError as exc:
        extra = getattr(exc, "headers", None)
        return problem_response(exc.to_problem(request_id), extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, ErrorCode.INTERNAL)
        detail = _http_detail(exc, request)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return problem_response(problem(code, detail, request_id=request_id), headers)
    except Exception:
        log.exception("http.unhandled", path=request.path, method=request.method)
        body = problem(ErrorCode.INTERNAL, "an unexpected error occurred", request_id=request_id)
        return problem_response(body)


def _http_detail(exc: web.HTTPException, request: web.Request) -> str:
    if exc.status == 404:
        return f"no route for {request.method} {request.path}"
    if exc.status == 405:
        return f"{request.method} is not allowed on {request.path}"
    if exc.status == 413:
        return "the request body is too large"
    return exc.reason or "the request cannot be served"
