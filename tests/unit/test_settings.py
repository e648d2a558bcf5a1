"""Settings from the environment: prefixes, conversions, fallbacks, clear errors."""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Literal

import msgspec
import pytest

from flowmesh_shared.jetstream import StreamLimits
from flowmesh_shared.settings import CommonSettings, SettingsError, load_settings


class Mode(enum.Enum):
    FAST = "fast"
    SAFE = "safe"


class Tuned(msgspec.Struct, frozen=True, kw_only=True):
    window: timedelta = timedelta(minutes=1)
    depth: int = 3


class ServiceSettings(CommonSettings, frozen=True, kw_only=True):
    database_url: str = "postgresql://default"
    http_port: int = 8081
    workers: int = 4
    ratio: float = 0.5
    verbose: bool = False
    tags: list[str] = []
    ports: list[int] = []
    lease: timedelta = timedelta(seconds=30)
    mode: Mode = Mode.SAFE
    style: Literal["plain", "fancy"] = "plain"
    secret: str | None = None
    limit: int | None = 10
    tuned: Tuned = Tuned()


PREFIX = "FLOWMESH_TEST"


def load(**env: str) -> ServiceSettings:
    return load_settings(ServiceSettings, PREFIX, env)


def test_defaults_when_nothing_is_set() -> None:
    settings = load()
    assert settings == ServiceSettings()
    assert (settings.nats_url, settings.subject_prefix, settings.stream_prefix) == (
        "nats://127.0.0.1:4222",
        "fm",
        "FM",
    )
    assert (settings.rpc_timeout, settings.shutdown_timeout, settings.http_port) == (
        5.0,
        10.0,
        8081,
    )


def test_values_convert_to_their_field_types() -> None:
    settings = load(
        FLOWMESH_TEST_WORKERS="8",
        FLOWMESH_TEST_RATIO="0.25",
        FLOWMESH_TEST_VERBOSE="yes",
        FLOWMESH_TEST_TAGS="a, b,,c",
        FLOWMESH_TEST_PORTS="1,2",
        FLOWMESH_TEST_LEASE="PT1H",
        FLOWMESH_TEST_MODE="fast",
        FLOWMESH_TEST_STYLE="fancy",
        FLOWMESH_TEST_SECRET="s3",
        FLOWMESH_TEST_LIMIT="",
        FLOWMESH_TEST_LOG_FORMAT="json",
    )
    assert settings.workers == 8
    assert settings.ratio == 0.25
    assert settings.verbose is True
    assert settings.tags == ["a", "b", "c"]
    assert settings.ports == [1, 2]
    assert settings.lease == timedelta(hours=1)
    assert settings.mode is Mode.FAST
    assert settings.style == "fancy"
    assert settings.secret == "s3"
    assert settings.limit is None
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30", timedelta(seconds=30)),
        ("0.5", timedelta(milliseconds=500)),
        ("P1D", timedelta(days=1)),
    ],
)
def test_durations_are_seconds_or_iso_8601(text: str, expected: timedelta) -> None:
    assert load(FLOWMESH_TEST_LEASE=text).lease == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("OFF", False), ("1", True), ("no", False)]
)
def test_booleans(text: str, expected: bool) -> None:
    assert load(FLOWMESH_TEST_VERBOSE=text).verbose is expected


def test_common_names_are_a_fallback_and_the_prefixed_one_wins() -> None:
    fallback = load(NATS_URL="nats://shared:4222", DATABASE_URL="postgresql://shared/db")
    assert fallback.nats_url == "nats://shared:4222"
    assert fallback.database_url == "postgresql://shared/db"
    both = load(NATS_URL="nats://shared:4222", FLOWMESH_TEST_NATS_URL="nats://mine:4222")
    assert both.nats_url == "nats://mine:4222"


def test_unrelated_variables_are_ignored() -> None:
    assert load(WORKERS="99", FLOWMESH_OTHER_WORKERS="98").workers == 4


def test_nested_settings_read_one_level_down() -> None:
    settings = load(FLOWMESH_TEST_TUNED_WINDOW="5", FLOWMESH_TEST_TUNED_DEPTH="7")
    assert settings.tuned == Tuned(window=timedelta(seconds=5), depth=7)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FLOWMESH_TEST_WORKERS", "many"),
        ("FLOWMESH_TEST_RATIO", "half"),
        ("FLOWMESH_TEST_VERBOSE", "maybe"),
        ("FLOWMESH_TEST_LEASE", "soon"),
        ("FLOWMESH_TEST_PORTS", "1,x"),
        ("FLOWMESH_TEST_MODE", "reckless"),
        ("FLOWMESH_TEST_STYLE", "gaudy"),
        ("FLOWMESH_TEST_TUNED_DEPTH", "deep"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load(**{variable: value})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert repr(value) in str(caught.value)


def test_a_literal_error_lists_the_choices() -> None:
    with pytest.raises(SettingsError, match="plain, fancy"):
        load(FLOWMESH_TEST_STYLE="gaudy")


def test_a_struct_check_failing_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="duplicate_window"):
        load_settings(StreamLimits, "FM_STREAMS", {"FM_STREAMS_RUN_REQUESTS_MAX_AGE": "60"})


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWMESH_TEST_WORKERS", "11")
    assert load_settings(ServiceSettings, PREFIX).workers == 11


def test_settings_are_frozen() -> None:
    settings = load()
    with pytest.raises(AttributeError):
        settings.workers = 5  # type: ignore[misc]


def test_startup_objects_are_frozen_out_of_gc() -> None:
    import gc

    from flowmesh_shared.lifecycle import freeze_startup_objects

    try:
        assert freeze_startup_objects() > 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
