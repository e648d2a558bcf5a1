"""Request/reply between services over NATS (``nats.micro``), typed with msgspec Structs.

Server: :class:`RpcService` serves ``<prefix>.rpc.<service>.<operation>`` in the queue group
``<service>``. Each request runs in its own task (nats-py runs one subscription's callbacks
one at a time), at most ``max_in_flight`` at once. A request is always answered: with the
handler's result, with the :class:`Problem` of a :class:`FlowmeshError`, or with a plain
INTERNAL problem (no traceback) for anything else. Error replies carry the
``Nats-Service-Error`` and ``Nats-Service-Error-Code`` headers (the HTTP status).

Client: :meth:`RpcClient.call` sends a :class:`flowmesh_proto.operations.Request` to the
operation it names and returns the reply type the request declares. It sets ``Fm-Tenant``,
``Fm-Principal``, ``Fm-Request-Id`` and ``traceparent``; an error reply raises
:class:`RemoteError`; no responders, a timeout or a closed connection raise
:class:`Unavailable` within the timeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import msgspec
import nats.errors
import structlog
from nats import micro
from nats.aio.client import Client
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from flowmesh_proto import headers as h
from flowmesh_proto.codec import encode
from flowmesh_proto.errors import ErrorCode, Problem, ProblemItem, problem
from flowmesh_proto.ids import new_id, tenant_id_problem
from flowmesh_proto.operations import Rep, Request, reply_type
from flowmesh_proto.principal import Principal, parse_principal
from flowmesh_proto.subjects import Subjects
from flowmesh_shared import telemetry
from flowmesh_shared.errors import (
    FlowmeshError,
    InternalError,
    RemoteError,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
    code_for_status,
)
from flowmesh_shared.health import RpcMetrics
from flowmesh_shared.lifecycle import InFlight
from flowmesh_shared.logging import bind_context, log_context

log = structlog.get_logger("flowmesh.rpc")

R = TypeVar("R", bound=msgspec.Struct)
T = TypeVar("T", bound=msgspec.Struct)
Handler = Callable[[R, "CallContext"], Awaitable[msgspec.Struct]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_problem_decoder = msgspec.json.Decoder(Problem)
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who asks, for whom, within which trace: what the headers of a request said."""

    operation: str
    request_id: str
    tenant: str | None = None
    principal: Principal | None = None
    trace: Context = field(default_factory=Context)
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def trace_id(self) -> str | None:
        return telemetry.trace_id(self.trace)


def call_context(operation: str, headers: Mapping[str, str], request_id: str) -> CallContext:
    """Read and check the headers; an invalid tenant or principal is refused, not ignored."""
    tenant = headers.get(h.TENANT) or None
    if tenant is not None:
        why = tenant_id_problem(tenant)
        if why is not None:
            raise ValidationFailed(
                f"the {h.TENANT} header is not a valid tenant id",
                errors=[ProblemItem(path=h.TENANT, code="VALIDATION_FAILED", message=why)],
            )
    principal_text = headers.get(h.PRINCIPAL) or None
    principal = parse_principal(principal_text)
    if principal_text is not None and principal is None:
        raise Unauthenticated(f"the {h.PRINCIPAL} header is malformed")
    return CallContext(
        operation=operation,
        request_id=request_id,
        tenant=tenant,
        principal=principal,
        trace=telemetry.extract(headers),
        headers=dict(headers),
    )


def request_id_of(headers: Mapping[str, str]) -> str:
    """The caller's request id when it is usable, else a new one."""
    given = headers.get(h.REQUEST_ID, "")
    return given if _REQUEST_ID.fullmatch(given) else str(new_id())


def decode_request(data: bytes, decoder: msgspec.json.Decoder[R]) -> R:
    """Decode a request body; a bad one is VALIDATION_FAILED with the path of the problem."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        item = validation_item(str(exc))
        raise ValidationFailed(f"the request is not valid: {item.message}", errors=[item]) from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:  # bad UTF-8, depth
        item = ProblemItem(path="", code="VALIDATION_FAILED", message=f"malformed JSON: {exc}")
        raise ValidationFailed("the request body is not valid JSON", errors=[item]) from exc


def validation_item(message: str) -> ProblemItem:
    """A msgspec message (``... - at `$.nodes[2].id```) as a problem with its JSON path."""
    text, _, where = message.partition(" - at `")
    path = where.rstrip("`").removeprefix("$").removeprefix(".")
    unknown = re.fullmatch(r"Object contains unknown field `(.+)`", text)
    if unknown:
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
    return ProblemItem(path=path, code="VALIDATION_FAILED", message=text)


@dataclass(frozen=True, slots=True)
class _Operation(Generic[R]):
    name: str
    decoder: msgspec.json.Decoder[R]
    handler: Handler[R]


class RpcService:
    """Serve operations of ``service`` as a ``nats.micro`` service."""

    def __init__(
        self,
        nc: Client,
        subjects: Subjects,
        service: str = "registry",
        version: str = "0.1.0",
        max_in_flight: int = 64,
        *,
        metrics: RpcMetrics | None = None,
        description: str = "",
    ) -> None:
        self.nc, self.subjects, self.service, self.version = nc, subjects, service, version
        self.description = description or f"Flowmesh {service}"
        self.metrics = metrics
        self._operations: dict[str, _Operation[Any]] = {}
        self._in_flight = InFlight(max_in_flight)
        self._micro: Any = None

    def add(self, operation: str, request_type: type[R], handler: Handler[R]) -> None:
        """Serve ``operation``: requests decode as ``request_type``; add before :meth:`start`."""
        if self._micro is not None:
            raise RuntimeError("add every operation before start()")
        self.subjects.rpc(self.service, operation)  # refuses a name that is not one token
        decoder = msgspec.json.Decoder(request_type)
        self._operations[operation] = _Operation(operation, decoder, handler)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def start(self) -> None:
        self._micro = await micro.add_service(
            self.nc,
            name=self.service,
            version=self.version,
            description=self.description,
            queue_group=self.service,
        )
        for op in self._operations.values():
            await self._micro.add_endpoint(
                name=op.name,
                subject=self.subjects.rpc(self.service, op.name),
                handler=self._receiver(op),
            )
        await self.nc.flush()
        log.info("rpc.serving", service=self.service, operations=len(self._operations))

    async def stop(self, grace: float = 10.0) -> int:
        """Stop intake, wait up to ``grace`` seconds for in-flight requests, cancel the rest."""
        if self._micro is not None:
            try:
                await self._micro.stop()
            except nats.errors.Error as exc:  # connection already closed: nothing to stop
                log.warning("rpc.stop_failed", service=self.service, error=str(exc))
        cancelled = await self._in_flight.wait(grace)
        log.info("rpc.stopped", service=self.service, cancelled=cancelled)
        return cancelled

    async def __aenter__(self) -> RpcService:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def _receiver(self, op: _Operation[Any]) -> Callable[[Any], Awaitable[None]]:
        async def receive(request: Any) -> None:
            await self._in_flight.spawn(self._serve(op, request), name=f"rpc:{op.name}")

        return receive

    async def _serve(self, op: _Operation[Any], request: Any) -> None:
        began = time.perf_counter()
        headers: Mapping[str, str] = request.headers or {}
        request_id = request_id_of(headers)
        attributes = {"rpc.system": "nats", "rpc.service": self.service, "rpc.method": op.name}
        name = f"rpc {self.service}.{op.name}"
        span_cm = telemetry.consumer_span(
            name, headers, kind=SpanKind.SERVER, attributes=attributes
        )
        with span_cm as span, log_context(request_id=request_id, operation=op.name):
            try:
                body, reply_headers, outcome = await self._answer(op, request, headers, request_id)
            except BaseException:  # cancelled at shutdown: still answer, then stop
                failure = Unavailable(f"the {self.service} service is stopping")
                await self._respond(request, *_error_reply(failure, request_id))
                raise
            if outcome != "ok":
                telemetry.mark_failed(span, outcome)
            await self._respond(request, body, reply_headers)
        if self.metrics is not None:
            self.metrics.observe(self.service, op.name, outcome, time.perf_counter() - began)

    async def _answer(
        self, op: _Operation[Any], request: Any, headers: Mapping[str, str], request_id: str
    ) -> tuple[bytes, dict[str, str], str]:
        try:
            ctx = call_context(op.name, headers, request_id)
            bind_context(tenant=ctx.tenant, principal=_text(ctx.principal))  # this task only
            payload = decode_request(request.data, op.decoder)
            result = await op.handler(payload, ctx)
            body = encode(result)
        except FlowmeshError as exc:
            status = exc.code.http_status
            log.log(
                40 if status >= 500 else 20,
                "rpc.error",
                code=exc.code.name,
                detail=exc.detail,
                exc_info=status >= 500,
            )
            return (*_error_reply(exc, request_id), "error" if status < 500 else "failed")
        except Exception:
            log.exception("rpc.failed")
            return (*_error_reply(InternalError(), request_id), "failed")
        return body, {h.REQUEST_ID: request_id}, "ok"

    async def _respond(self, request: Any, body: bytes, headers: dict[str, str]) -> None:
        try:
            await request.respond(body, headers=headers)
        except nats.errors.MaxPayloadError:
            too_big = FlowmeshError(ErrorCode.PAYLOAD_TOO_LARGE, "the reply is too large")
            await self._respond(request, *_error_reply(too_big, headers.get(h.REQUEST_ID, "")))
        except (ValueError, nats.errors.Error) as exc:  # no reply subject, or connection lost
            log.warning("rpc.reply_failed", error=str(exc) or type(exc).__name__)


def _error_reply(error: FlowmeshError, request_id: str) -> tuple[bytes, dict[str, str]]:
    body = error.to_problem(request_id)
    return encode(body), {
        h.SERVICE_ERROR: body.title,
        h.SERVICE_ERROR_CODE: str(body.status),
        h.REQUEST_ID: request_id,
    }


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class RpcClient:
    """Call the operations of ``service``; never waits longer than the timeout."""

    def __init__(
        self, nc: Client, subjects: Subjects, service: str = "registry", timeout: float = 5.0
    ) -> None:
        self.nc, self.subjects, self.service, self.timeout = nc, subjects, service, timeout

    async def call(
        self,
        request: Request[Rep],
        *,
        tenant: str | None = None,
        principal: Principal | str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a bound per call, as documented
    ) -> Rep:
        """Send ``request`` to the operation it names; the reply decodes as the type it
        declares (``Request[Reply]``)."""
        kind = type(request)
        return await self.send(
            kind.operation,
            request,
            reply_type(kind),
            tenant=tenant,
            principal=principal,
            request_id=request_id,
            timeout=timeout,
        )

    async def send(
        self,
        operation: str,
        request: msgspec.Struct,
        result_type: type[T],
        *,
        tenant: str | None = None,
        principal: Principal | str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a bound per call, as documented
    ) -> T:
        """Send ``request`` to ``operation`` and decode the reply as ``result_type`` (for an
        operation without a :class:`Request` type: prefer :meth:`call`)."""
        subject = self.subjects.rpc(self.service, operation)
        limit = self.timeout if timeout is None else timeout
        headers = {h.REQUEST_ID: request_id or _bound_request_id() or str(new_id())}
        if tenant is not None:
            headers[h.TENANT] = tenant
        if principal is not None:
            headers[h.PRINCIPAL] = str(principal)
        attributes = {"rpc.system": "nats", "rpc.service": self.service, "rpc.method": operation}
        span_name = f"rpc {self.service}.{operation}"
        span = telemetry.producer_span(span_name, kind=SpanKind.CLIENT, attributes=attributes)
        with span as trace_headers:
            headers.update(trace_headers)
            reply = await self._request(subject, encode(request), headers, limit)
        return _result(reply, result_type, f"{self.service}.{operation}")

    async def _request(
        self, subject: str, body: bytes, headers: dict[str, str], limit: float
    ) -> Any:
        try:
            return await self.nc.request(subject, body, timeout=limit, headers=headers)
        except nats.errors.NoRespondersError as exc:
            raise Unavailable(f"no {self.service} service is running") from exc
        except TimeoutError as exc:  # nats.errors.TimeoutError is one
            message = f"the {self.service} service did not answer within {limit:g} s"
            raise Unavailable(message) from exc
        except nats.errors.Error as exc:
            raise Unavailable(f"cannot reach the {self.service} service: {exc}") from exc


def _result(reply: Any, result_type: type[T], what: str) -> T:
    reply_headers: Mapping[str, str] = reply.headers or {}
    status = reply_headers.get(h.SERVICE_ERROR_CODE)
    if status is not None:
        raise RemoteError(_remote_problem(reply.data, reply_headers, status))
    try:
        return _decoder(result_type).decode(reply.data)
    except msgspec.MsgspecError as exc:
        raise InternalError(f"the reply of {what} does not match its contract: {exc}") from exc


def _decoder(result_type: type[T]) -> msgspec.json.Decoder[T]:
    """One decoder per reply type, built on first use."""
    decoder = _decoders.get(result_type)
    if decoder is None:
        decoder = _decoders[result_type] = msgspec.json.Decoder(result_type)
    return cast("msgspec.json.Decoder[T]", decoder)


def _remote_problem(data: bytes, headers: Mapping[str, str], status: str) -> Problem:
    try:
        return _problem_decoder.decode(data)
    except msgspec.MsgspecError:
        code = code_for_status(int(status) if status.isdigit() else 500)
        return problem(
            code, headers.get(h.SERVICE_ERROR, ""), request_id=headers.get(h.REQUEST_ID, "")
        )


def _bound_request_id() -> str | None:
    """The request id bound to the current task's logs (a request being served)."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None
