"""The platform admin token and the HS256 secret are long enough, or the gateway does not
start: one clear line naming the variable, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flowmesh_gateway.settings import ENV_PREFIX, MIN_SECRET_LENGTH, GatewaySettings
from flowmesh_shared.settings import SettingsError, load_settings

LONG = "x" * MIN_SECRET_LENGTH


@pytest.mark.parametrize("variable", ["ADMIN_TOKEN", "JWT_HS256_SECRET"])
def test_a_short_secret_is_refused_naming_its_variable(variable: str) -> None:
    name = f"{ENV_PREFIX}_{variable}"
    with pytest.raises(SettingsError) as caught:
        load_settings(GatewaySettings, ENV_PREFIX, {name: "short-secret"})
    message = str(caught.value)
    assert name in message and "12 characters" in message and "at least 32" in message


@pytest.mark.parametrize("variable", ["ADMIN_TOKEN", "JWT_HS256_SECRET"])
def test_empty_or_long_enough_is_accepted(variable: str) -> None:
    name = f"{ENV_PREFIX}_{variable}"
    assert load_settings(GatewaySettings, ENV_PREFIX, {name: ""})
    settings = load_settings(GatewaySettings, ENV_PREFIX, {name: LONG})
    assert getattr(settings, variable.lower()) == LONG
    with pytest.raises(SettingsError):
        load_settings(GatewaySettings, ENV_PREFIX, {name: LONG[1:]})


def test_the_gateway_does_not_start_with_a_short_admin_token() -> None:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("FLOWMESH_GATEWAY")
    }
    env[f"{ENV_PREFIX}_ADMIN_TOKEN"] = "admin"
    env["NATS_URL"] = "nats://127.0.0.1:1"  # never reached: the settings stop it first
    done = subprocess.run(
        [sys.executable, "-m", "flowmesh_gateway"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "FLOWMESH_GATEWAY_ADMIN_TOKEN has 5 characters; it needs at least 32" in lines[0]
    assert "Traceback" not in done.stderr
