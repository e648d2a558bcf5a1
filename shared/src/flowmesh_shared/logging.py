"""Logging: structlog events with fields, as JSON lines or readable console lines.

Context (``tenant``, ``run_id``, ``request_id``, ``principal``) is bound once at a boundary
with :func:`log_context` (structlog contextvars, so it follows the task); ``trace_id`` and
``span_id`` are added from the current OpenTelemetry span by a processor. Records of the
standard library (nats-py, aiohttp, asyncpg) go through the same renderer.

Tracebacks never show the values of local variables (structlog's default does): a frame
may hold an API key, a secret's value or a decrypted one.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from opentelemetry import trace

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def add_trace_context(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Add the current span's ``trace_id`` and ``span_id`` (hex) when a span is active."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


def configure_logging(
    level: str = "info", fmt: str = "auto", *, stream: TextIO | None = None
) -> None:
    """Set up structlog and the standard library's logging.

    ``fmt`` is ``json`` (one JSON object a line), ``console`` (readable, coloured on a
    terminal) or ``auto``: JSON unless ``stream`` (stdout by default) is a terminal.
    """
    out = stream if stream is not None else sys.stdout
    numeric = LEVELS.get(level.lower())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    as_json = fmt == "json" or (fmt == "auto" and not _is_tty(out))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_context,
    ]
    renderer: Any
    if as_json:
        renderer = structlog.processors.JSONRenderer()
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=_is_tty(out), exception_formatter=_console_tracebacks()
        )
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(numeric, shared, renderer, out)


def _console_tracebacks() -> Any:
    """Rich tracebacks when rich is installed, plain ones otherwise; never with locals."""
    if importlib.util.find_spec("rich") is not None:
        return structlog.dev.RichTracebackFormatter(show_locals=False)
    return structlog.dev.plain_traceback


def _route_stdlib(level: int, shared: list[Any], renderer: Any, out: TextIO) -> None:
    """Send the standard library's records through the same processors and renderer."""
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_flowmesh", False)]:
        root.removeHandler(old)
    handler._flowmesh = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(max(level, logging.INFO))  # third-party debug output stays quiet


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Bind ``values`` (``None`` ones are skipped) to every log line inside the block."""
    tokens = structlog.contextvars.bind_contextvars(
        **{key: value for key, value in values.items() if value is not None}
    )
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def bind_context(**values: object) -> None:
    """Bind ``values`` for the rest of the current task (a boundary that owns its task)."""
    structlog.contextvars.bind_contextvars(
        **{key: value for key, value in values.items() if value is not None}
    )
