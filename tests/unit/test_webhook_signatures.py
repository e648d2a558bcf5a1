"""Webhook signatures (pure): header parsing, the time window, HMAC verification, and the
headers a run may see. A fixed clock throughout."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmesh_gateway.replays import replay_ttl
from flowmesh_gateway.routes.webhooks import trigger_headers
from flowmesh_gateway.signatures import (
    MAX_SIGNATURES,
    SignatureError,
    SignedHeaders,
    check_window,
    message_digest,
    parse_headers,
    sign,
    signature_header,
    verify,
)

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
SECRET = "whsec_current"
OLD = "whsec_previous"
BODY = b'{"order": 42}'


def signed(secrets: list[str], timestamp: int = NOW, body: bytes = BODY) -> SignedHeaders:
    return parse_headers(str(timestamp), signature_header(secrets, timestamp, body))


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == expected
    assert signature_header([SECRET], NOW, BODY) == f"v1={expected}"


def test_a_good_signature_verifies() -> None:
    verify(signed([SECRET]), [SECRET], BODY)
    verify(signed([SECRET]), [SECRET, OLD], BODY)  # the current of two
    verify(signed([OLD]), [SECRET, OLD], BODY)  # the previous one, in its grace period
    verify(signed([OLD, SECRET]), [SECRET], BODY)  # a sender signing with both


@pytest.mark.parametrize(
    ("headers", "secrets", "body"),
    [
        (signed(["whsec_other"]), [SECRET], BODY),  # another secret
        (signed([SECRET]), [SECRET], BODY + b" "),  # another body
        (signed([OLD]), [SECRET], BODY),  # the previous secret after its grace
        (signed([SECRET]), [], BODY),  # a webhook with no secret
    ],
)
def test_a_wrong_signature_is_refused(
    headers: SignedHeaders, secrets: list[str], body: bytes
) -> None:
    with pytest.raises(SignatureError):
        verify(headers, secrets, body)


def test_the_timestamp_of_the_header_is_the_one_verified() -> None:
    genuine = signature_header([SECRET], NOW, BODY)
    moved = parse_headers(str(NOW + 60), genuine)
    with pytest.raises(SignatureError, match="does not match"):
        verify(moved, [SECRET], BODY)


def test_several_values_and_other_schemes() -> None:
    good = sign(SECRET, NOW, BODY)
    value = f"v0=abc, v1={'0' * 64} , v1={good.upper()}"
    headers = parse_headers(f" {NOW} ", value)
    assert headers.timestamp == NOW and len(headers.signatures) == 2
    verify(headers, [SECRET], BODY)


@pytest.mark.parametrize(
    ("timestamp", "signature", "says"),
    [
        (None, "v1=" + "0" * 64, "Flowmesh-Timestamp header is missing"),
        (str(NOW), None, "Flowmesh-Signature header is missing"),
        (None, None, "Flowmesh-Timestamp and Flowmesh-Signature"),
        ("", "", "missing"),
        ("12.5", "v1=" + "0" * 64, "unix seconds"),
        ("-5", "v1=" + "0" * 64, "unix seconds"),
        ("2026-01-01T00:00:00Z", "v1=" + "0" * 64, "unix seconds"),
        ("1" * 13, "v1=" + "0" * 64, "unix seconds"),
        (str(NOW), "sha256=abc", "no v1 signature"),
        (str(NOW), "0" * 64, "v1=<hex>"),
        (str(NOW), "v1=xyz", "64 hexadecimal"),
        (str(NOW), "v1=" + "0" * 63, "64 hexadecimal"),
        (str(NOW), ",".join(["v1=" + "0" * 64] * (MAX_SIGNATURES + 1)), "more than"),
    ],
)
def test_malformed_headers_say_what_is_wrong(
    timestamp: str | None, signature: str | None, says: str
) -> None:
    with pytest.raises(SignatureError, match=says):
        parse_headers(timestamp, signature)


def test_the_window_is_tolerance_on_either_side_of_now() -> None:
    check_window(NOW, NOW, 300)
    check_window(NOW - 300, NOW, 300)
    check_window(NOW + 300, NOW, 300)
    with pytest.raises(SignatureError, match="expired: signed 301 s ago"):
        check_window(NOW - 301, NOW, 300)
    with pytest.raises(SignatureError, match="301 s in the future"):
        check_window(NOW + 301, NOW, 300)


def test_a_request_is_identified_by_what_was_signed() -> None:
    one = message_digest(NOW, BODY)
    assert one == message_digest(NOW, BODY)
    assert one != message_digest(NOW + 1, BODY)
    assert one != message_digest(NOW, BODY + b" ")
    assert len(one) == 64


def test_replays_are_remembered_while_the_timestamp_could_pass() -> None:
    tolerance = timedelta(minutes=5)
    assert replay_ttl(tolerance) > 2 * tolerance


@given(
    secret=st.text(min_size=1, max_size=40),
    body=st.binary(max_size=200),
    timestamp=st.integers(0, 10**12 - 1),
)
def test_whatever_is_signed_verifies_and_a_changed_byte_does_not(
    secret: str, body: bytes, timestamp: int
) -> None:
    headers = signed([secret], timestamp, body)
    verify(headers, [secret], body)
    with pytest.raises(SignatureError):
        verify(headers, [secret], body + b"x")


def test_a_run_sees_only_safe_headers() -> None:
    shown = trigger_headers(
        {
            "Content-Type": "application/json",
            "User-Agent": "sender/1.0",
            "X-Delivery-Id": "d-1",
            "X-GitHub-Event": "push",
            "Authorization": "Bearer fm_secret",
            "Cookie": "session=1",
            "X-Api-Key": "k",
            "X-Auth-Token": "t",
            "X-Hub-Signature-256": "sha256=...",
            "Flowmesh-Signature": "v1=...",
            "Flowmesh-Timestamp": str(NOW),
            "Host": "example",
        }
    )
    assert shown == {
        "content-type": "application/json",
        "user-agent": "sender/1.0",
        "x-delivery-id": "d-1",
        "x-github-event": "push",
    }
    many = trigger_headers({f"X-H{i}": "v" * 5000 for i in range(100)})
    assert len(many) == 32 and all(len(v) == 1024 for v in many.values())
