"""Gateway benchmark: GET by id and list over HTTP, open loop at a fixed arrival rate.

The registry (``python -m flowmesh_registry``) and the gateway (``python -m
flowmesh_gateway``) run as their own processes against PostgreSQL and a fresh nats-server
2.15 on loopback; this process is the HTTP client (aiohttp, one session, one connection
pool). A tenant is created through ``POST /api/v1/admin/tenants``, N workflows are created
through ``POST /api/v1/{tenant}/workflows``, then:

- GET ``/workflows/{id}`` on random ids at a fixed arrival rate (open loop, 500/s): each
  request is due at ``start + i / rate`` and its latency is counted from that moment, so
  a stall shows as queueing for every request due meanwhile (no coordinated omission);
- GET by id closed loop (N concurrent workers, as fast as they go): the ceiling;
- list 50 newest, list 50 with a tag filter, list 50 with ``q=`` search, each at a fixed
  rate (100/s);
- optionally (``--wrk``) the closed-loop GET again with ``wrk`` as the client.

    uv run python bench/gateway.py --workflows 10000 --wrk --out bench/results/gateway.json

The gateway's rate limits are raised for the run (the defaults would refuse most of it).
The client shares the machine's cores with every server it measures; each phase records
the cores each part used. The machine may be shared with other work: each phase waits
(up to ``--quiet-wait`` s) for an idle machine and is measured again (up to ``--retries``
times) when other processes used more than a fifth of a core meanwhile.

PostgreSQL: DATABASE_URL if set, else 127.0.0.1:5432 if it answers, else a local cluster
under .flowmesh/bench-postgres. A fresh database is created and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import random
import resource
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import asyncpg
from workload import definition, summary, wait_ready  # bench/workload.py (scripts run from bench/)

from flowmesh_devtools.localstack import (
    NatsHandle,
    ensure_nats,
    ensure_nats_cluster,
    ensure_postgres,
    free_port,
)

TARGETS = {"get_p99_ms": 10, "list50_p99_ms": 30}
# The gateway's default limits (100/s per key, 200/s per tenant) would answer most of a
# 500/s benchmark with 429: this benchmark measures the serving path, not the limiter.
UNLIMITED = {
    "FLOWMESH_GATEWAY_KEY_RATE": "1000000",
    "FLOWMESH_GATEWAY_KEY_BURST": "1000000",
    "FLOWMESH_GATEWAY_TENANT_RATE": "1000000",
    "FLOWMESH_GATEWAY_TENANT_BURST": "1000000",
}


TICK = os.sysconf("SC_CLK_TCK")
#: Below this many cores busy the machine counts as quiet before a phase.
QUIET_CORES = 0.15
#: Cores used by other processes during a phase above which it is measured again.
DISTURBED_CORES = 0.2


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used; 0 when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy() -> float:
    """CPU seconds all cpus have spent not idle (nor waiting for I/O) since boot."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK


class CpuMeter:
    """Cores used by each part of the stack during a phase, and by the rest of the machine.

    ``client`` is this process (and wrk when it is the client); ``postgres`` counts the
    backends connected to the benchmark's database (the registry's pool); ``rest of
    machine`` is everything else, PostgreSQL's background processes included: well above
    0.1 means something else ran meanwhile and the figures are noisy.
    """

    def __init__(self, fm: Stack) -> None:
        self.fm = fm
        self.pids: dict[str, list[int]] = {}
        self.before: dict[str, float] = {}
        self.began = 0.0

    async def start(self) -> None:
        rows = await self.fm.admin_db.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            self.fm.database,
        )
        self.pids = {
            "client": [os.getpid()],
            "gateway": [self.fm.gateway.pid],
            "registry": [self.fm.registry.pid],
            "nats": [self.fm.nats_pid] if self.fm.nats_pid else [],
            "postgres": [row["pid"] for row in rows],
        }
        self.before = self._read()
        self.began = time.perf_counter()

    def _read(self) -> dict[str, float]:
        parts = {name: sum(process_cpu(p) for p in pids) for name, pids in self.pids.items()}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has exited
        parts["client"] += children.ru_utime + children.ru_stime
        parts["machine"] = machine_busy()
        return parts

    def stop(self) -> dict[str, float]:
        after, wall = self._read(), time.perf_counter() - self.began
        used = {name: (after[name] - self.before[name]) / wall for name in after}
        used["rest of machine"] = used["machine"] - sum(
            v for k, v in used.items() if k != "machine"
        )
        return {name: round(max(0.0, value), 2) for name, value in used.items()}


class Outcome:
    """Latencies of the successful requests and a count of the failures, by status."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.lags: list[float] = []  # how late the client sent (its own scheduling delay)
        self.errors: collections.Counter[str] = collections.Counter()


async def fetch(session: aiohttp.ClientSession, path: str, outcome: Outcome, due: float) -> None:
    """One GET; its latency counted from ``due`` (the moment it was scheduled)."""
    outcome.lags.append(time.perf_counter() - due)
    try:
        async with session.get(path) as resp:
            await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        outcome.errors[type(exc).__name__] += 1
        return
    if status == 200:
        outcome.latencies.append(time.perf_counter() - due)
    else:
        outcome.errors[str(status)] += 1


async def open_loop(
    session: aiohttp.ClientSession,
    path_of: Callable[[int], str],
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """Requests due at a fixed rate whatever the answers do; latency from the due time."""
    outcome = Outcome()
    count = int(rate * seconds)
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.05
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(fetch(session, path_of(i), outcome, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)
    wall = time.perf_counter() - start
    return {
        "rate": rate,
        "seconds": seconds,
        **summary(outcome.latencies),
        "achieved_per_s": round(len(outcome.latencies) / wall, 1),
        "errors": sum(outcome.errors.values()),
        "errors_by_kind": dict(outcome.errors),
        "client_send_lag_p99_ms": round(
            sorted(outcome.lags)[int(0.99 * len(outcome.lags))] * 1000, 3
        ),
    }


async def closed_loop(
    session: aiohttp.ClientSession,
    path_of: Callable[[int], str],
    concurrency: int,
    seconds: float,
) -> dict[str, Any]:
    """``concurrency`` workers, each sending its next request when the last one answers."""
    outcome = Outcome()
    counter = iter(range(1 << 62))
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while (now := time.perf_counter()) < stop:
            await fetch(session, path_of(next(counter)), outcome, now)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - began
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        **summary(outcome.latencies),
        "achieved_per_s": round(len(outcome.latencies) / wall, 1),
        "errors": sum(outcome.errors.values()),
        "errors_by_kind": dict(outcome.errors),
    }


WRK_SCRIPT = """
ids = {}
for line in io.lines(os.getenv("FM_IDS")) do ids[#ids + 1] = line end
base = os.getenv("FM_BASE")
math.randomseed(os.time())
wrk.headers["Authorization"] = "Bearer " .. os.getenv("FM_KEY")
request = function()
  return wrk.format("GET", base .. ids[math.random(#ids)])
end
done = function(summary, latency, requests)
  io.write(string.format("FMJSON {\\"requests\\": %d, \\"non2xx\\": %d, \\"errors\\": %d, "
    .. "\\"p50_us\\": %d, \\"p90_us\\": %d, \\"p99_us\\": %d, \\"max_us\\": %d, "
    .. "\\"duration_us\\": %d}\\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.duration))
end
"""


def write_wrk_inputs(folder: Path, ids: list[str]) -> tuple[Path, Path]:
    script, id_file = folder / "get.lua", folder / "ids.txt"
    script.write_text(WRK_SCRIPT)
    id_file.write_text("\n".join(ids) + "\n")
    return script, id_file


async def run_wrk(
    base_url: str, path: str, key: str, ids: list[str], concurrency: int, seconds: float
) -> dict[str, Any]:
    """Closed-loop GET by id with wrk (one thread: the machine has two cores to share)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"skipped": "wrk is not installed (apt-get install -y wrk)"}
    with tempfile.TemporaryDirectory(prefix="fm-bench-wrk-") as tmp:
        script, id_file = write_wrk_inputs(Path(tmp), ids)
        env = {**os.environ, "FM_IDS": str(id_file), "FM_BASE": path, "FM_KEY": key}
        process = await asyncio.create_subprocess_exec(
            wrk,
            "-t1",
            f"-c{concurrency}",
            f"-d{int(seconds)}s",
            "--latency",
            "-s",
            str(script),
            base_url,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
    line = next(x for x in out.decode().splitlines() if x.startswith("FMJSON "))
    raw = json.loads(line.removeprefix("FMJSON "))
    return {
        "tool": "wrk 4.1 (closed loop; the Debian package has no constant-rate -R)",
        "concurrency": concurrency,
        "seconds": seconds,
        "n": raw["requests"],
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "achieved_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "errors": raw["non2xx"] + raw["errors"],
    }


async def seed(
    session: aiohttp.ClientSession, base: str, count: int, concurrency: int
) -> tuple[list[str], dict[str, Any]]:
    ids: list[str] = []
    samples: list[float] = []
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            began = time.perf_counter()
            async with session.post(base, json=definition(i)) as resp:
                body = await resp.json()
                if resp.status != 201:
                    raise SystemExit(f"creating a workflow answered {resp.status}: {body}")
            samples.append(time.perf_counter() - began)
            ids.append(body["id"])

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - began
    return ids, {
        **summary(samples),
        "per_s": round(len(samples) / wall, 1),
        "concurrency": concurrency,
    }


async def profile(pid: int, seconds: float, out: Path | None) -> asyncio.subprocess.Process | None:
    """py-spy on the gateway while a phase runs (py-spy must be on PATH), if asked."""
    if out is None:
        return None
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy on PATH (uvx py-spy, or pip install py-spy)")
    return await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "250",
        "--format",
        "raw" if out.suffix == ".txt" else "flamegraph",
        "--output",
        str(out),
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
    )


class Stack(NamedTuple):
    url: str
    tenant: str
    key: str
    admin_db: asyncpg.Connection
    registry: asyncio.subprocess.Process
    gateway: asyncio.subprocess.Process
    nats_pid: int | None
    database: str
    nats_url: str = ""
    executor: asyncio.subprocess.Process | None = None
    executor_url: str = ""  # its /healthz, /readyz and /metrics
    scheduler: asyncio.subprocess.Process | None = None
    scheduler_url: str = ""  # its /healthz, /readyz and /metrics
    admin_token: str = ""  # the platform admin's (POST /api/v1/admin/tenants)


@contextlib.asynccontextmanager
async def stack(
    keep_database: bool = False,
    *,
    executor: bool = False,
    sync_always: bool = False,
    replicas: int = 1,
    scheduler: bool = False,
    limits: Mapping[str, str] = UNLIMITED,
    executor_env: Mapping[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """PostgreSQL (a fresh database), nats-server, the registry, the gateway and a tenant
    (and an executor, a scheduler when asked; ``sync_always``: NATS fsyncs every write).

    ``limits``: the gateway's rate-limit settings (raised by default; ``{}`` keeps the
    gateway's defaults). ``executor_env``: more settings of the executor.

    ``replicas`` above 1: a cluster of that many nats-server nodes on loopback instead of
    one server, and every service creates its streams and buckets with that many replicas
    (``nats_pid`` is then None: the nodes' CPU is not told apart from the rest).
    """
    home = Path.cwd() / ".flowmesh"
    pg = await ensure_postgres(
        home / "bench",
        os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    database = f"fm_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg.url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    db_url = pg.url.rsplit("/", 1)[0] + f"/{database}"
    store = Path(tempfile.mkdtemp(prefix="fm-bench-nats-"))
    nats = (
        await ensure_nats_cluster(store, nodes=replicas, sync_always=sync_always)
        if replicas > 1
        else await ensure_nats(store, sync_always=sync_always)
    )
    registry_port, gateway_port = free_port(), free_port()
    admin_token = "fmadm_" + secrets.token_urlsafe(24)
    registry_env = {
        **os.environ,
        "FLOWMESH_REGISTRY_DATABASE_URL": db_url,
        "FLOWMESH_REGISTRY_NATS_URL": nats.url,
        "FLOWMESH_REGISTRY_HTTP_PORT": str(registry_port),
        "FLOWMESH_REGISTRY_LOG_LEVEL": "warning",
        "FLOWMESH_REGISTRY_POOL_MAX_SIZE": "10",
        "FLOWMESH_REGISTRY_STREAMS_REPLICAS": str(replicas),
    }
    gateway_env = {
        **os.environ,
        "NATS_URL": nats.url,
        "FLOWMESH_GATEWAY_HTTP_PORT": str(gateway_port),
        "FLOWMESH_GATEWAY_ADMIN_TOKEN": admin_token,
        "FLOWMESH_GATEWAY_LOG_LEVEL": "warning",
        "FLOWMESH_GATEWAY_STREAMS_REPLICAS": str(replicas),
        **limits,
    }
    admin_db = await asyncpg.connect(db_url)
    processes: list[asyncio.subprocess.Process] = []
    try:
        registry = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flowmesh_registry", env=registry_env
        )
        processes.append(registry)
        await wait_ready(f"http://127.0.0.1:{registry_port}/readyz", registry, "registry")
        running_executor, executor_url = None, ""
        if executor:
            executor_port = free_port()
            executor_url = f"http://127.0.0.1:{executor_port}"
            executor_env = {
                **os.environ,
                "NATS_URL": nats.url,
                "FLOWMESH_EXECUTOR_HTTP_PORT": str(executor_port),
                "FLOWMESH_EXECUTOR_LOG_LEVEL": "warning",
                "FLOWMESH_EXECUTOR_MAX_EVENTS_PER_RUN": "100000",
                "FLOWMESH_EXECUTOR_STREAMS_REPLICAS": str(replicas),
                **(executor_env or {}),
            }
            running_executor = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "flowmesh_executor", env=executor_env
            )
            processes.append(running_executor)
            await wait_ready(f"{executor_url}/readyz", running_executor, "executor")
        running_scheduler, scheduler_url = None, ""
        if scheduler:
            scheduler_port = free_port()
            scheduler_url = f"http://127.0.0.1:{scheduler_port}"
            scheduler_env = {
                **os.environ,
                "NATS_URL": nats.url,
                "FLOWMESH_SCHEDULER_HTTP_PORT": str(scheduler_port),
                "FLOWMESH_SCHEDULER_LOG_LEVEL": "warning",
                "FLOWMESH_SCHEDULER_STREAMS_REPLICAS": str(replicas),
            }
            running_scheduler = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "flowmesh_scheduler", env=scheduler_env
            )
            processes.append(running_scheduler)
            await wait_ready(f"{scheduler_url}/readyz", running_scheduler, "scheduler")
        gateway = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flowmesh_gateway", env=gateway_env
        )
        processes.append(gateway)
        url = f"http://127.0.0.1:{gateway_port}"
        await wait_ready(f"{url}/readyz", gateway, "gateway")

        tenant = f"bench-{secrets.token_hex(3)}"
        key = await new_tenant(url, admin_token, tenant)
        nats_pid = nats.process.pid if isinstance(nats, NatsHandle) and nats.process else None
        yield Stack(
            url,
            tenant,
            key,
            admin_db,
            registry,
            gateway,
            nats_pid,
            database,
            nats_url=nats.url,
            executor=running_executor,
            executor_url=executor_url,
            scheduler=running_scheduler,
            scheduler_url=scheduler_url,
            admin_token=admin_token,
        )
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.terminate()
                await process.wait()
        await nats.stop()
        shutil.rmtree(store, ignore_errors=True)
        await admin_db.close()
        if keep_database:
            print(f"kept database {db_url}", flush=True)
        else:
            await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        await admin.close()
        await pg.stop()


async def new_tenant(url: str, admin_token: str, tenant: str) -> str:
    """Create ``tenant`` (POST /api/v1/admin/tenants); its admin key."""
    async with (
        aiohttp.ClientSession(url) as plain,
        plain.post(
            "/api/v1/admin/tenants",
            json={"id": tenant},
            headers={"Authorization": f"Bearer {admin_token}"},
        ) as resp,
    ):
        created = await resp.json()
        if resp.status != 201:
            raise SystemExit(f"creating {tenant} answered {resp.status}: {created}")
        return str(created["admin_key"]["key"])


def client(url: str, key: str, pool: int) -> aiohttp.ClientSession:
    """One session, one pool of keep-alive connections, the key on every request."""
    return aiohttp.ClientSession(
        url,
        connector=aiohttp.TCPConnector(limit=pool, limit_per_host=pool),
        headers={"Authorization": f"Bearer {key}"},
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def wait_quiet(limit: float) -> float:
    """Wait up to ``limit`` seconds for a second in which the machine is nearly idle.

    The machine may be shared (other people's test runs); a figure taken while something
    else uses a core measures that, not the gateway. Returns the cores last seen busy.
    """
    deadline = time.perf_counter() + limit
    while True:
        before, began = machine_busy(), time.perf_counter()
        await asyncio.sleep(1.0)
        busy = (machine_busy() - before) / (time.perf_counter() - began)
        if busy < QUIET_CORES or time.perf_counter() >= deadline:
            return round(busy, 2)
        print(f"the machine is busy ({busy:.2f} cores used by others): waiting", flush=True)


async def phase(
    fm: Stack, args: argparse.Namespace, name: str, make: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """One measured phase, on a quiet machine; again (up to ``--retries``) if disturbed."""
    for attempt in range(1, args.retries + 2):
        busy_before = await wait_quiet(args.quiet_wait)
        meter = CpuMeter(fm)
        await meter.start()
        result = await make()
        cpu = meter.stop()
        result = {**result, "cpu_cores": cpu, "others_busy_before_cores": busy_before}
        result["attempts"] = attempt
        if cpu["rest of machine"] <= DISTURBED_CORES or attempt > args.retries:
            break
        print(f"{name}: others used {cpu['rest of machine']} cores meanwhile: again", flush=True)
    print(name, result, flush=True)
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with stack(args.keep_database) as fm:
        base = f"/api/v1/{fm.tenant}/workflows"
        async with client(fm.url, fm.key, args.pool) as session:
            ids, results["seed_create"] = await seed(
                session, base, args.workflows, args.seed_concurrency
            )
            print("seed (POST /workflows)", results["seed_create"], flush=True)
            # What autovacuum does soon after a bulk load: planner statistics, and the GIN
            # indexes' pending lists merged (until then a trigram search or a tag filter is
            # a sequential scan). Without it the list figures measure a table that was
            # loaded a second ago, not one in steady state.
            began = time.perf_counter()
            await fm.admin_db.execute("VACUUM ANALYZE")
            print(f"VACUUM ANALYZE {time.perf_counter() - began:.1f} s", flush=True)

            def get_path(_: int) -> str:
                return f"{base}/{random.choice(ids)}"

            # Warm-up: connections opened, the key cached, code paths and PostgreSQL's
            # buffers warm. Not recorded.
            await open_loop(session, get_path, args.rate, args.warmup)

            async def get_open() -> dict[str, Any]:
                spy = await profile(fm.gateway.pid, args.seconds, args.profile)
                result = await open_loop(session, get_path, args.rate, args.seconds)
                if spy is not None:
                    await spy.wait()
                    print(f"py-spy profile of the gateway: {args.profile}", flush=True)
                return result

            name = f"get_open_{int(args.rate)}_per_s"
            results[name] = await phase(fm, args, name, get_open)

            name = f"get_closed_c{args.concurrency}"
            results[name] = await phase(
                fm,
                args,
                name,
                lambda: closed_loop(session, get_path, args.concurrency, args.closed_seconds),
            )

            lists: list[tuple[str, Callable[[int], str]]] = [
                ("list50", lambda _: f"{base}?limit=50"),
                ("list50_tag_filter", lambda i: f"{base}?limit=50&tags=team-{i % 20}&sort=name"),
                ("list50_search", lambda i: f"{base}?limit=50&q=bench-{i % 9999:05d}"),
            ]
            for name, path_of in lists:
                await open_loop(session, path_of, args.list_rate, 1.0)  # warm-up

                def list_open(path_of: Callable[[int], str] = path_of) -> Awaitable[Any]:
                    return open_loop(session, path_of, args.list_rate, args.list_seconds)

                results[name] = await phase(fm, args, name, list_open)

        if args.wrk:

            def get_wrk() -> Awaitable[dict[str, Any]]:
                seconds = args.closed_seconds
                return run_wrk(fm.url, f"{base}/", fm.key, ids, args.concurrency, seconds)

            name = f"get_closed_c{args.concurrency}_wrk"
            results[name] = await phase(fm, args, name, get_wrk)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--seed-concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=500, help="GET by id, requests/s")
    parser.add_argument("--seconds", type=float, default=20, help="GET by id, measured")
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop GET")
    parser.add_argument("--closed-seconds", type=float, default=10)
    parser.add_argument("--list-rate", type=float, default=100)
    parser.add_argument("--list-seconds", type=float, default=15)
    parser.add_argument("--pool", type=int, default=64, help="client connection pool size")
    parser.add_argument("--wrk", action="store_true", help="cross-check closed-loop GET with wrk")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the gateway during the open-loop GET (.svg/.txt)"
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=60, help="at most this long for an idle machine"
    )
    parser.add_argument("--retries", type=int, default=2, help="of a phase others disturbed")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep-database", action="store_true", help="for EXPLAIN afterwards")
    args = parser.parse_args()
    began = time.perf_counter()
    results = asyncio.run(run(args))
    report = {
        "command": "uv run python " + " ".join(sys.argv),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "note": "the client, gateway, registry, nats-server and PostgreSQL share the cpus",
        },
        "workflows_stored": args.workflows,
        "gateway_rate_limits": "raised to 1,000,000/s (defaults: 100/s per key, 200/s per tenant)",
        "latency": "from each request's scheduled start (open loop) to its body read",
        "results": results,
        "targets": TARGETS,
        "seconds_total": round(time.perf_counter() - began, 1),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
