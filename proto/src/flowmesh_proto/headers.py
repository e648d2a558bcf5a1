"""NATS header names that carry who asks, for whom, and within which trace."""

from __future__ import annotations

TENANT = "Fm-Tenant"
PRINCIPAL = "Fm-Principal"
REQUEST_ID = "Fm-Request-Id"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
SERVICE_ERROR = "Nats-Service-Error"
SERVICE_ERROR_CODE = "Nats-Service-Error-Code"
