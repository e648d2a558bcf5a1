"""Webhook signatures (pure): parse the headers, check the time window, verify the HMAC.

A sender signs ``"<timestamp>.<raw body>"`` with HMAC-SHA256 under the webhook's secret and
sends::

    Flowmesh-Timestamp: 1767225600
    Flowmesh-Signature: v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

``Flowmesh-Signature`` may carry several ``v1=`` values, comma-separated (a sender that
signs with both the new and the previous secret while it switches over); one match is
enough. Values of another scheme (``v0=...``) are ignored. The timestamp must lie within
``tolerance`` of now, on either side.

A request is identified by what was signed, not by the signature header: the same
timestamp and body under any signature (or any set of them) is the same request
(:func:`message_digest`), which is what replays are recognised by.

No I/O, no clock: ``now`` is an argument; :class:`SignatureError` says what is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

import msgspec

TIMESTAMP_HEADER = "Flowmesh-Timestamp"
SIGNATURE_HEADER = "Flowmesh-Signature"
SCHEME = "v1"
#: More values than this in one header is not a sender switching secrets.
MAX_SIGNATURES = 8
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-f]{64}")


class SignatureError(Exception):
    """The request's signature is missing, malformed, out of its time window or wrong."""


class SignedHeaders(msgspec.Struct, frozen=True):
    """The two headers, parsed: the signing time (unix seconds) and the ``v1`` digests."""

    timestamp: int
    signatures: tuple[bytes, ...]


def parse_headers(timestamp: str | None, signature: str | None) -> SignedHeaders:
    """The headers' values, or :class:`SignatureError` naming what is missing or malformed."""
    if not timestamp or not signature:
        missing = [
            name
            for name, value in ((TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, signature))
            if not value
        ]
        raise SignatureError(f"the {' and '.join(missing)} header is missing")
    if not _TIMESTAMP.fullmatch(timestamp.strip()):
        raise SignatureError(f"{TIMESTAMP_HEADER} must be unix seconds (digits only)")
    digests: list[bytes] = []
    parts = signature.split(",")
    if len(parts) > MAX_SIGNATURES:
        raise SignatureError(f"{SIGNATURE_HEADER} carries more than {MAX_SIGNATURES} values")
    for part in parts:
        scheme, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"{SIGNATURE_HEADER} reads v1=<hex>[,v1=<hex>...]")
        if scheme != SCHEME:
            continue
        value = value.strip().lower()
        if not _HEX.fullmatch(value):
            raise SignatureError(f"a {SCHEME} signature is 64 hexadecimal digits")
        digests.append(bytes.fromhex(value))
    if not digests:
        raise SignatureError(f"{SIGNATURE_HEADER} carries no {SCHEME} signature")
    return SignedHeaders(timestamp=int(timestamp.strip()), signatures=tuple(digests))


def check_window(timestamp: int, now: float, tolerance: float) -> None:
    """:class:`SignatureError` when ``timestamp`` is more than ``tolerance`` seconds from now."""
    if timestamp < now - tolerance:
        raise SignatureError(
            f"the signature has expired: signed {int(now - timestamp)} s ago, "
            f"at most {int(tolerance)} s are accepted"
        )
    if timestamp > now + tolerance:
        raise SignatureError(
            f"the signature's timestamp is {int(timestamp - now)} s in the future, "
            f"at most {int(tolerance)} s are accepted"
        )


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` signature (hex) of ``body`` sent at ``timestamp``: what senders compute."""
    return _digest(secret, timestamp, body).hex()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """A ``Flowmesh-Signature`` value signing ``body`` with each of ``secrets``."""
    return ",".join(f"{SCHEME}={sign(secret, timestamp, body)}" for secret in secrets)


def verify(headers: SignedHeaders, secrets: Sequence[str], body: bytes) -> None:
    """:class:`SignatureError` unless one signature is ``body``'s under one of ``secrets``.

    Every comparison is constant-time, and every pair is compared (no early exit that would
    tell which secret or which position matched).
    """
    if not secrets:
        raise SignatureError("the webhook has no secret to verify signatures with")
    matched = False
    for secret in secrets:
        expected = _digest(secret, headers.timestamp, body)
        for given in headers.signatures:
            matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureError("the signature does not match the body and timestamp")


def message_digest(timestamp: int, body: bytes) -> str:
    """What identifies a signed request (hex SHA-256 of ``"<timestamp>.<body>"``)."""
    return hashlib.sha256(_signed(timestamp, body)).hexdigest()


def _signed(timestamp: int, body: bytes) -> bytes:
    return str(timestamp).encode() + b"." + body


def _digest(secret: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(secret.encode(), _signed(timestamp, body), hashlib.sha256).digest()
