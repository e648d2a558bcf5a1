"""Where the gateway is and who we are: options, else the environment, else ``make dev``'s file.

Each setting is resolved on its own, first found wins:

- the gateway URL: ``--url``, ``FLOWMESH_URL``, ``gateway_url`` of the dev file;
- the tenant: ``--tenant``, ``FLOWMESH_TENANT``, ``tenant`` of the dev file;
- the API key: ``--key``, ``FLOWMESH_API_KEY``, ``api_key`` of the dev file.

The dev file is ``$FLOWMESH_HOME/dev.json`` (``FLOWMESH_HOME`` defaults to ``.flowmesh``,
relative to the working directory), written by ``make dev`` once the stack answers; it is
read only when an option and its variable are both missing. An empty value counts as unset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit

import msgspec

from flowmesh_client.errors import ConfigError
from flowmesh_proto.ids import tenant_id_problem

DEFAULT_HOME = ".flowmesh"


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """A gateway, a tenant on it, and the API key to use there."""

    url: str  # without a trailing slash; may carry a path prefix (a proxy's)
    tenant: str
    api_key: str

    def __repr__(self) -> str:
        return f"Target(url={self.url!r}, tenant={self.tenant!r}, api_key=<redacted>)"

    def api(self, *parts: str) -> str:
        """The URL of ``/api/v1/{tenant}/<parts>``, each part escaped as one path segment."""
        return f"{self.url}{self.path(*parts)}"

    def path(self, *parts: str) -> str:
        """``/api/v1/{tenant}/<parts>``, each part escaped as one path segment."""
        path = "/".join(quote(part, safe="") for part in parts)
        return f"/api/v1/{self.tenant}/{path}"


class _Setting(msgspec.Struct, frozen=True):
    name: str  # what the messages call it
    option: str
    variable: str
    dev_key: str


_SETTINGS = (
    _Setting("gateway URL", "--url", "FLOWMESH_URL", "gateway_url"),
    _Setting("tenant", "--tenant", "FLOWMESH_TENANT", "tenant"),
    _Setting("API key", "--key", "FLOWMESH_API_KEY", "api_key"),
)


def dev_file(env: Mapping[str, str], cwd: Path) -> Path:
    """``$FLOWMESH_HOME/dev.json``, as ``make dev`` writes it."""
    return cwd / (env.get("FLOWMESH_HOME") or DEFAULT_HOME) / "dev.json"


def resolve(options: Mapping[str, str | None], env: Mapping[str, str], cwd: Path) -> Target:
    """The target named by ``options`` (keyed ``--url``, ``--tenant``, ``--key``), else ``env``,
    else the dev file; :class:`ConfigError` naming every missing or unusable setting."""
    found: dict[str, tuple[str, str]] = {}  # dev key -> (value, where it came from)
    for setting in _SETTINGS:
        if value := options.get(setting.option):
            found[setting.dev_key] = (value, setting.option)
        elif value := env.get(setting.variable):
            found[setting.dev_key] = (value, setting.variable)
    missing = [s for s in _SETTINGS if s.dev_key not in found]
    if missing:
        path = dev_file(env, cwd)
        saved = _read_dev_file(path)
        for setting in missing:
            saved_value = saved.get(setting.dev_key)
            if isinstance(saved_value, str) and saved_value:
                found[setting.dev_key] = (saved_value, f"{path} ({setting.dev_key})")
        missing = [s for s in missing if s.dev_key not in found]
        if missing:
            raise ConfigError(_missing_message(missing, path, exists=bool(saved)))
    url, url_source = found["gateway_url"]
    tenant, tenant_source = found["tenant"]
    _check_url(url, url_source)
    if problem := tenant_id_problem(tenant):
        raise ConfigError(f"{tenant_source}: {problem} (got {tenant!r})")
    return Target(url=url.rstrip("/"), tenant=tenant, api_key=found["api_key"][0])


def _read_dev_file(path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        saved = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not JSON ({exc}): run `make dev` again") from exc
    if not isinstance(saved, dict):
        raise ConfigError(f"{path} is not a JSON object: run `make dev` again")
    return saved


def _missing_message(missing: list[_Setting], path: Path, *, exists: bool) -> str:
    names = [s.name for s in missing]
    what = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    ways = ", ".join(f"{s.option} (or {s.variable})" for s in missing)
    where = f"{path} has none" if exists else f"{path} does not exist: `make dev` writes it"
    return f"no {what}: give {ways}; {where}"


def _check_url(url: str, source: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{source}: {url!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"{source}: {url!r} has a query or fragment: give the gateway's base URL")
