"""Tenant secrets at rest: AES-256-GCM, each value bound to its tenant and its name.

Pure: text and bytes in, text and bytes out; no I/O, no logging.

A value is sealed with the current key under a fresh random 96-bit nonce. The associated
data names the tenant and the secret, so a ciphertext copied into another tenant's row or
under another name does not open. A sealed value records the id of the key that sealed it;
opening looks that id up among the current key and the old ones, which is how keys rotate:
seal with a new key (and a new id) while the old keys still open what they sealed.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,32}$"
_KEY_ID_RE = re.compile(KEY_ID_PATTERN)
_CONTEXT = b"flowmesh-secret/v1"


class SecretBoxError(Exception):
    """A sealed secret could not be opened."""


class UnknownKey(SecretBoxError):
    """The secret was sealed with a key that is not configured."""


class KeyringError(ValueError):
    """A secrets key setting cannot be used."""


class Sealed(msgspec.Struct, frozen=True, kw_only=True):
    """What is stored: the ciphertext (with its tag), its nonce, and the id of its key."""

    ciphertext: bytes
    nonce: bytes
    key_id: str


def associated_data(tenant: str, name: str) -> bytes:
    """What a ciphertext is bound to: neither a tenant id nor a name can hold a NUL."""
    return b"\0".join((_CONTEXT, tenant.encode(), name.encode()))


class Keyring:
    """The current key (which seals) and every key that may open: id -> 32 bytes."""

    def __init__(self, current_id: str, keys: Mapping[str, bytes]) -> None:
        if current_id not in keys:
            raise KeyringError(f"no key has the current id {current_id!r}")
        for key_id, key in keys.items():
            _check_id(key_id)
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key {key_id!r} has {len(key)} bytes, not {KEY_BYTES}")
        self.current_id = current_id
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def __repr__(self) -> str:  # never the keys themselves
        return f"Keyring(current_id={self.current_id!r}, key_ids={sorted(self._ciphers)!r})"

    @classmethod
    def from_settings(cls, key: str, key_id: str, old_keys: str = "") -> Keyring | None:
        """Parse the settings; None when no current key is set (secrets are unavailable).

        ``key`` is base64 of 32 bytes; ``old_keys`` is ``id:base64,id:base64``. An error
        names the setting and the key id, never the key.
        """
        if not key.strip():
            return None
        keys = {key_id: decode_key(key, "secrets_key")}
        for entry in filter(None, (part.strip() for part in old_keys.split(","))):
            old_id, sep, text = entry.partition(":")
            old_id = old_id.strip()
            if not sep:
                raise KeyringError("secrets_old_keys: each entry reads <id>:<base64 key>")
            if old_id in keys:
                raise KeyringError(f"secrets_old_keys: key id {old_id!r} is given twice")
            keys[old_id] = decode_key(text, f"secrets_old_keys ({old_id})")
        return cls(key_id, keys)

    def seal(self, tenant: str, name: str, value: str, *, nonce: bytes | None = None) -> Sealed:
        """Encrypt ``value`` with the current key; ``nonce`` is for tests only."""
        nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"a nonce has {NONCE_BYTES} bytes")
        cipher = self._ciphers[self.current_id]
        ciphertext = cipher.encrypt(nonce, value.encode(), associated_data(tenant, name))
        return Sealed(ciphertext=ciphertext, nonce=nonce, key_id=self.current_id)

    def open(self, tenant: str, name: str, sealed: Sealed) -> str:
        """Decrypt a value sealed for ``tenant`` and ``name``; :class:`SecretBoxError` if not."""
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise UnknownKey(f"secret {name} is sealed with key {sealed.key_id!r}, not configured")
        try:
            plain = cipher.decrypt(sealed.nonce, sealed.ciphertext, associated_data(tenant, name))
        except (InvalidTag, ValueError) as exc:
            raise SecretBoxError(f"secret {name} does not open with key {sealed.key_id!r}") from exc
        return plain.decode()


def decode_key(text: str, setting: str) -> bytes:
    """Base64 (standard or URL-safe) of exactly 32 bytes."""
    cleaned = text.strip()
    try:
        key = base64.b64decode(cleaned.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyringError(f"{setting}: not base64") from exc
    if len(key) != KEY_BYTES:
        raise KeyringError(f"{setting}: {len(key)} bytes, an AES-256 key has {KEY_BYTES}")
    return key


def new_key() -> str:
    """A fresh key as the settings take it (base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def _check_id(key_id: str) -> None:
    if not _KEY_ID_RE.fullmatch(key_id):
        raise KeyringError(f"key id {key_id!r} must match {KEY_ID_PATTERN}")
