"""Log lines: tracebacks never carry the values of local variables."""

from __future__ import annotations

import io
import json
import logging
import secrets

import pytest
import structlog

from flowmesh_shared.logging import configure_logging


def _fails_holding(value: str) -> None:
    raise RuntimeError("it failed")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_tracebacks_do_not_show_locals(fmt: str) -> None:
    value = secrets.token_hex(16)  # made at run time: the source lines shown cannot hold it
    out = io.StringIO()
    configure_logging("info", fmt, stream=out)
    try:
        try:
            _fails_holding(value)
        except RuntimeError:
            structlog.get_logger("test").exception("step.failed")
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_flowmesh", False)]:
            root.removeHandler(handler)
    text = out.getvalue()
    assert "it failed" in text and "_fails_holding" in text
    assert value not in text
    if fmt == "json":
        assert json.loads(text.splitlines()[-1])["event"] == "step.failed"
