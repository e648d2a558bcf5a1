"""Where ``flowmesh`` finds its gateway, tenant and key: options, environment, dev.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowmesh_cli.errors import exit_code
from flowmesh_client.config import Target, resolve
from flowmesh_client.errors import ConfigError

NO_OPTIONS: dict[str, str | None] = {"--url": None, "--tenant": None, "--key": None}
ENV = {
    "FLOWMESH_URL": "http://env:8080/",
    "FLOWMESH_TENANT": "env-tenant",
    "FLOWMESH_API_KEY": "fm_env_key",
}


def write_dev(home: Path, **values: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dev.json"
    path.write_text(json.dumps({"admin_token": "fmadm_x", "nats_url": "nats://x", **values}))
    return path


def test_options_win_over_the_environment(tmp_path: Path) -> None:
    options = {"--url": "https://gw.example/base/", "--tenant": "acme", "--key": "fm_k"}
    target = resolve(options, ENV, tmp_path)
    assert target == Target(url="https://gw.example/base", tenant="acme", api_key="fm_k")
    assert target.api("runs", "a/b", "events") == (
        "https://gw.example/base/api/v1/acme/runs/a%2Fb/events"
    )


def test_the_environment_wins_over_the_dev_file(tmp_path: Path) -> None:
    write_dev(tmp_path / ".flowmesh", gateway_url="http://dev", tenant="demo", api_key="fm_dev")
    target = resolve(NO_OPTIONS, ENV, tmp_path)
    assert target == Target(url="http://env:8080", tenant="env-tenant", api_key="fm_env_key")


def test_each_setting_falls_back_on_its_own(tmp_path: Path) -> None:
    write_dev(tmp_path / ".flowmesh", gateway_url="http://dev:8080", tenant="demo", api_key="fm_d")
    target = resolve({**NO_OPTIONS, "--tenant": "acme"}, {"FLOWMESH_API_KEY": "fm_e"}, tmp_path)
    assert target == Target(url="http://dev:8080", tenant="acme", api_key="fm_e")


def test_flowmesh_home_moves_the_dev_file(tmp_path: Path) -> None:
    write_dev(tmp_path / "elsewhere", gateway_url="http://dev", tenant="demo", api_key="fm_d")
    env = {"FLOWMESH_HOME": str(tmp_path / "elsewhere"), "FLOWMESH_URL": ""}  # empty: unset
    assert resolve(NO_OPTIONS, env, tmp_path / "cwd").tenant == "demo"


def test_nothing_found_names_every_way_to_give_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(NO_OPTIONS, {"FLOWMESH_URL": "http://x"}, tmp_path)
    message = caught.value.message
    assert message.startswith("no tenant or API key: give --tenant (or FLOWMESH_TENANT), --key")
    assert f"{tmp_path / '.flowmesh' / 'dev.json'} does not exist" in message
    assert exit_code(caught.value) == 2  # usage


def test_a_dev_file_without_the_setting(tmp_path: Path) -> None:
    write_dev(tmp_path / ".flowmesh", gateway_url="http://dev", tenant="demo")
    with pytest.raises(ConfigError, match=r"^no API key: .*dev.json has none$"):
        resolve(NO_OPTIONS, {}, tmp_path)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_broken_dev_file(tmp_path: Path, content: str) -> None:
    (tmp_path / ".flowmesh").mkdir()
    (tmp_path / ".flowmesh" / "dev.json").write_text(content)
    with pytest.raises(ConfigError, match="run `make dev` again"):
        resolve(NO_OPTIONS, {}, tmp_path)


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({**ENV, "FLOWMESH_URL": "gw:8080"}, "FLOWMESH_URL: 'gw:8080' is not an http"),
        ({**ENV, "FLOWMESH_URL": "http://gw/?a=1"}, "has a query or fragment"),
        ({**ENV, "FLOWMESH_TENANT": "a.>"}, "FLOWMESH_TENANT: tenant id must match"),
        ({**ENV, "FLOWMESH_TENANT": "admin"}, "FLOWMESH_TENANT: tenant id 'admin' is reserved"),
    ],
)
def test_unusable_values_are_refused_naming_their_source(
    tmp_path: Path, env: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(NO_OPTIONS, env, tmp_path)
    assert complaint in caught.value.message


def test_the_key_is_not_in_the_repr() -> None:
    target = Target(url="http://x", tenant="acme", api_key="fm_acme_secret")
    assert "fm_acme_secret" not in repr(target)
