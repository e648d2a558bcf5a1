"""Sealing tenant secrets: AES-256-GCM bound to tenant and name; keys by id for rotation."""

from __future__ import annotations

import base64

import msgspec
import pytest

from flowmesh_proto.registry import SecretPut, SecretValues
from flowmesh_registry.secretbox import (
    NONCE_BYTES,
    Keyring,
    KeyringError,
    SecretBoxError,
    UnknownKey,
    associated_data,
    new_key,
)
from flowmesh_registry.settings import ENV_PREFIX, RegistrySettings
from flowmesh_shared.settings import SettingsError, load_settings

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(32, 64))).decode()


def keyring(key: str = KEY_A, key_id: str = "k1", old: str = "") -> Keyring:
    ring = Keyring.from_settings(key, key_id, old)
    assert ring is not None
    return ring


def test_round_trip_with_a_fresh_nonce_each_time() -> None:
    ring = keyring()
    first = ring.seal("acme", "API_TOKEN", "s3cr3t-ü")
    second = ring.seal("acme", "API_TOKEN", "s3cr3t-ü")
    assert len(first.nonce) == NONCE_BYTES and first.key_id == "k1"
    assert first.nonce != second.nonce and first.ciphertext != second.ciphertext
    assert b"s3cr3t" not in first.ciphertext
    assert ring.open("acme", "API_TOKEN", first) == "s3cr3t-ü"
    assert ring.open("acme", "API_TOKEN", second) == "s3cr3t-ü"


@pytest.mark.parametrize(
    ("tenant", "name"),
    [("other", "API_TOKEN"), ("acme", "OTHER_TOKEN"), ("acme-x", "API_TOKEN"), ("acm", "E_API")],
)
def test_a_value_opens_only_for_its_tenant_and_name(tenant: str, name: str) -> None:
    ring = keyring()
    sealed = ring.seal("acme", "API_TOKEN", "value")
    with pytest.raises(SecretBoxError):
        ring.open(tenant, name, sealed)


def test_associated_data_cannot_be_shifted_between_tenant_and_name() -> None:
    assert associated_data("ab", "C") != associated_data("a", "BC")


def test_a_value_does_not_open_with_another_key() -> None:
    sealed = keyring(KEY_A).seal("acme", "API_TOKEN", "value")
    with pytest.raises(SecretBoxError):
        keyring(KEY_B).open("acme", "API_TOKEN", sealed)


@pytest.mark.parametrize("part", ["ciphertext", "nonce"])
def test_tampering_is_detected(part: str) -> None:
    ring = keyring()
    sealed = ring.seal("acme", "API_TOKEN", "value")
    raw = bytearray(getattr(sealed, part))
    raw[0] ^= 1
    tampered = msgspec.structs.replace(sealed, **{part: bytes(raw)})
    with pytest.raises(SecretBoxError):
        ring.open("acme", "API_TOKEN", tampered)
    truncated = msgspec.structs.replace(sealed, ciphertext=sealed.ciphertext[:-1])
    with pytest.raises(SecretBoxError):
        ring.open("acme", "API_TOKEN", truncated)


def test_rotation_old_keys_open_what_they_sealed_new_values_use_the_new_key() -> None:
    before = keyring(KEY_A, "k1").seal("acme", "API_TOKEN", "old value")
    rotated = keyring(KEY_B, "k2", old=f"k1:{KEY_A}")
    assert rotated.open("acme", "API_TOKEN", before) == "old value"
    after = rotated.seal("acme", "API_TOKEN", "new value")
    assert after.key_id == "k2"
    assert keyring(KEY_B, "k2").open("acme", "API_TOKEN", after) == "new value"
    with pytest.raises(UnknownKey):
        keyring(KEY_B, "k2").open("acme", "API_TOKEN", before)


def test_no_key_means_no_keyring() -> None:
    assert Keyring.from_settings("", "k1", f"k0:{KEY_A}") is None


@pytest.mark.parametrize(
    ("key", "key_id", "old", "says"),
    [
        ("not base64!", "k1", "", "secrets_key: not base64"),
        (base64.b64encode(b"short").decode(), "k1", "", "secrets_key: 5 bytes"),
        (KEY_A, "bad id", "", "key id 'bad id'"),
        (KEY_A, "k1", "k0", "each entry reads"),
        (KEY_A, "k1", f"k1:{KEY_B}", "given twice"),
        (KEY_A, "k1", "k0:AAAA", "secrets_old_keys (k0): 3 bytes"),
    ],
)
def test_unusable_key_settings_are_refused_without_showing_the_key(
    key: str, key_id: str, old: str, says: str
) -> None:
    with pytest.raises(KeyringError) as caught:
        Keyring.from_settings(key, key_id, old)
    assert says in str(caught.value)
    assert KEY_A not in str(caught.value) and KEY_B not in str(caught.value)


def test_url_safe_base64_is_accepted_too() -> None:
    urlsafe = base64.urlsafe_b64encode(bytes([251] * 32)).decode()
    assert "-" in urlsafe or "_" in urlsafe
    assert keyring(urlsafe).key_ids == {"k1"}


def test_new_key_is_usable() -> None:
    assert new_key() != new_key()
    assert keyring(new_key()).current_id == "k1"


def test_registry_settings_read_the_keys_and_refuse_bad_ones() -> None:
    env = {
        f"{ENV_PREFIX}_SECRETS_KEY": KEY_B,
        f"{ENV_PREFIX}_SECRETS_KEY_ID": "k2",
        f"{ENV_PREFIX}_SECRETS_OLD_KEYS": f"k1:{KEY_A}",
    }
    ring = load_settings(RegistrySettings, ENV_PREFIX, env).secrets_keyring
    assert ring is not None and ring.current_id == "k2" and ring.key_ids == {"k1", "k2"}
    assert load_settings(RegistrySettings, ENV_PREFIX, {}).secrets_keyring is None
    with pytest.raises(SettingsError) as caught:
        load_settings(RegistrySettings, ENV_PREFIX, {f"{ENV_PREFIX}_SECRETS_KEY": "abc"})
    assert "secrets_key" in str(caught.value)


def test_reprs_never_show_keys_or_values() -> None:
    ring = keyring()
    assert KEY_A not in repr(ring) and "k1" in repr(ring)
    put = SecretPut(name="API_TOKEN", value="hunter2")
    values = SecretValues(values={"API_TOKEN": "hunter2"})
    for text in (repr(put), str(put), repr(values), f"{values}", repr([put, values])):
        assert "hunter2" not in text
    assert "API_TOKEN" in repr(values)
    settings = RegistrySettings(secrets_key=KEY_A, secrets_old_keys=f"k0:{KEY_B}")
    assert KEY_A not in repr(settings) and KEY_B not in repr(settings)
    assert "secrets_key='***'" in repr(settings) and "secrets_key_id='k1'" in repr(settings)
