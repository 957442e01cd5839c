"""Benchmark: a replica's resident memory, idle and holding 100 000 open assignments.

A replica runs on small VMs next to other services, so what it keeps resident matters.
We start real processes and read their resident set size (``VmRSS``, and the peak
``VmHWM``) from ``/proc/<pid>/status``:

a. a bare asyncio process on the same interpreter: the baseline;
b. one idle replica (``python -m bridge run``) on a fresh, empty PostgreSQL database that
   it migrates itself, sandbox connector, console SMS, every job on a 0.5 s interval;
c. one replica on a database seeded (``bench/seed.py``) with 100 000 clients, each with
   one open assignment and a reminder due a week ahead (a practice's steady state);
d. a process that only imports the bridge's dependency stack and idles: what the
   libraries cost, apart from what the bridge itself holds.

Each replica is sampled every ``--every`` seconds over ``--sample`` seconds, after it is
ready (GET /healthz) and its jobs have run for ``--settle`` seconds; the jobs' work shows
as committed transactions on its database. Targets: the idle replica within 10 MiB of the
bare asyncio process; under 300 MB (300 000 000 bytes, peak) with 100 000 assignments.

e. Import costs: each heavy module's RSS, imported alone in a fresh interpreter (on top of
   ``import asyncio``), and what leaving it out of the ``bridge run`` import path would
   save (the run path imported with that module replaced by an empty stub; "n/a" when the
   run path cannot import without it). ``--skip-imports`` leaves this out.

``--overdue N`` adds a scenario: N open assignments already past due plus the missed-note
grace (their reminders cancelled, so only write-back has work); the replica's write-back
plans a "missed" note for each (in chunks of scheduler.batch_size), and we report its
peak RSS.

Run: ``python bench/bench_memory.py [--assignments 100000]``. The last line is one JSON
object; keys ending ``_bytes`` are bytes, ``_mib`` are MiB (2**20 bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import describe, free_port, machine, stop  # noqa: E402
from bench.seed import admin_url, drop_database, fresh_database, seed_assignments  # noqa: E402

MIB = 1 << 20
IDLE_TARGET_MIB = 10
LOADED_TARGET_BYTES = 300_000_000
DB_IDLE = "bridge_bench_memory_idle"
DB_LOADED = "bridge_bench_memory_100k"
DB_OVERDUE = "bridge_bench_memory_overdue"
PG_URL = os.environ.get("BRIDGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

BARE = """
import asyncio, sys

async def main():
    sys.stdout.write("ready\\n")
    sys.stdout.flush()
    await asyncio.sleep(3600)

asyncio.run(main())
"""

# What the bridge's code imports from its dependencies (pyproject), plus what uvicorn and
# SQLAlchemy load lazily once serving on PostgreSQL.
DEPENDENCIES = [
    "fastapi",
    "fastapi.responses",
    "starlette",
    "uvicorn",
    "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.lifespan.on",
    "multipart",
    "pydantic",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.postgresql.psycopg",
    "sqlmodel",
    "psycopg",
    "alembic.command",
    "alembic.runtime.migration",
    "apscheduler.schedulers.asyncio",
    "apscheduler.executors.pool",
    "apscheduler.triggers.interval",
    "jinja2",
    "httpx",
    "tenacity",
    "yaml",
    "phonenumbers",
    "typer",
    "rich.console",
    "twilio.rest",
    "twilio.request_validator",
    "twilio.twiml.messaging_response",
    "sendgrid",
    "sendgrid.helpers.eventwebhook",
    "fhir.resources.R4B.task",
    "fhir.resources.R4B.documentreference",
]

DEPS_ONLY = (
    "import importlib, asyncio, sys\n"
    "for name in sys.argv[1:]:\n"
    "    importlib.import_module(name)\n" + BARE.split("\n", 2)[2]
)

# What `python -m bridge run` imports before it serves (bridge/cli.py: run, then uvicorn's
# lazily chosen loop and protocol, the sandbox connector's entry point, the psycopg dialect).
RUN_PATH = [
    "bridge.cli",
    "bridge.config",
    "bridge.service",
    "bridge.store.db",
    "bridge.web.app",
    "bridge.scheduler",
    "connectors.sandbox",
    "uvicorn",
    "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.lifespan.on",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
    "alembic.runtime.migration",
]

# (label, modules imported alone, prefixes stubbed out of the run path to price deferral)
IMPORT_PROBES = [
    ("fastapi (+starlette, opentelemetry)", ["fastapi"], None),
    ("uvicorn (+h11 protocol)", ["uvicorn", "uvicorn.protocols.http.h11_impl"], None),
    ("sqlalchemy (+orm)", ["sqlalchemy", "sqlalchemy.orm"], None),
    ("sqlmodel", ["sqlmodel"], None),
    ("pydantic", ["pydantic"], None),
    ("psycopg (+SQLAlchemy dialect)", ["sqlalchemy.dialects.postgresql.psycopg"], None),
    ("apscheduler (asyncio scheduler)", ["apscheduler.schedulers.asyncio"], None),
    ("alembic (command, +mako)", ["alembic.command"], ["alembic", "mako"]),
    (
        "fhir.resources R4B Task + DocumentReference",
        ["fhir.resources.R4B.task", "fhir.resources.R4B.documentreference"],
        ["fhir", "fhir_core"],
    ),  # fmt: skip
    (
        "twilio webhooks (request_validator, twiml)",
        ["twilio.request_validator", "twilio.twiml.messaging_response"],
        ["twilio"],
    ),  # fmt: skip
    ("twilio.rest (TwilioSmsChannel)", ["twilio.rest"], None),
    ("sendgrid", ["sendgrid"], None),
    ("httpx (+its CLI: click, rich, pygments)", ["httpx"], ["httpx"]),
    ("jinja2", ["jinja2"], ["jinja2"]),
    ("phonenumbers", ["phonenumbers"], ["phonenumbers"]),
    ("tenacity", ["tenacity"], ["tenacity"]),
    ("typer (+click)", ["typer"], None),
    ("rich.console", ["rich.console"], None),
    ("yaml", ["yaml"], None),
    ("connectors.fhir_r4 (not on the sandbox run path)", ["connectors.fhir_r4"], None),
    ("bridge run path (everything above it loads)", RUN_PATH, None),
]

PROBE = r"""
import gc, importlib, importlib.abc, importlib.util, json, sys
stub, pre, mods = (json.loads(a) for a in sys.argv[1:4])

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

class Stub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if any(name == s or name.startswith(s + ".") for s in stub):
            return importlib.util.spec_from_loader(name, self, is_package=True)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        module.__path__ = []
        def attr(name):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {})
        module.__getattr__ = attr

sys.meta_path.insert(0, Stub())
import asyncio  # noqa: E401 - the baseline of every probe
for name in pre:
    importlib.import_module(name)
gc.collect()
before = rss()
error = None
try:
    for name in mods:
        importlib.import_module(name)
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
gc.collect()
print(json.dumps({"before": before, "after": rss(), "error": error,
                  "modules": len(sys.modules)}))
"""

# RSS of the run path by top-level package: each module's own import, less the imports it
# triggers (bridge and connectors modules are listed one by one).
ATTRIBUTE = r"""
import importlib, json, sys
from importlib.abc import MetaPathFinder

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

cost, stack = {}, []

class Attribute(MetaPathFinder):
    def find_spec(self, name, path, target=None):
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
        else:
            return None
        inner = getattr(spec.loader, "exec_module", None)
        if inner is None:
            return spec
        own = name.startswith(("bridge.", "connectors."))
        key = name if own else name.split(".")[0]

        def exec_module(module):
            stack.append([rss(), 0])
            try:
                inner(module)
            finally:
                start, child = stack.pop()
                total = rss() - start
                cost[key] = cost.get(key, 0) + total - child
                if stack:
                    stack[-1][1] += total
        try:
            spec.loader.exec_module = exec_module
        except AttributeError:
            pass
        return spec

sys.meta_path.insert(0, Attribute())
before = rss()
for name in ["asyncio", *json.loads(sys.argv[1])]:
    importlib.import_module(name)
print(json.dumps({"before": before, "after": rss(), "cost": cost}))
"""

CONFIG = """
practice:
  name: Bench Practice
  contact: "(312) 555-0100"
database:
  url: {url}
server:
  host: 127.0.0.1
  port: {port}
connectors:
  - name: ehr
    type: sandbox
    poll_interval_seconds: {interval}
channels:
  sms: console
scheduler:
  dispatch_interval_seconds: {interval}
  writeback_interval_seconds: {interval}
security:
  secret_key: bench-memory-secret-key-0123456789abcdef
"""


# -- measuring ---------------------------------------------------------------------


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a live process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def sample(proc: subprocess.Popen, seconds: float, every: float) -> dict[str, int]:
    samples = []
    deadline = time.monotonic() + seconds
    while True:
        check_alive(proc)
        samples.append(status(proc.pid)["VmRSS"])
        if time.monotonic() + every > deadline:
            break
        time.sleep(every)
    return {
        "rss_max_bytes": max(samples),
        "rss_last_bytes": samples[-1],
        # the kernel's counters sync lazily: a sample can read a little above VmHWM
        "hwm_bytes": max(status(proc.pid)["VmHWM"], *samples),
        "samples": len(samples),
    }


def mib(n: float) -> float:
    return round(n / MIB, 1)


# -- processes ---------------------------------------------------------------------


_LOGS: dict[int, Path] = {}  # pid -> its log, for the tail shown when one dies


class Procs:
    """Every child we start, so that each is stopped, whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[subprocess.Popen] = []
        self.logs: dict[int, Path] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None):
        log_path = self.workdir / f"{name}.log"
        log = open(log_path, "w")  # noqa: SIM115 - a pipe nobody reads fills up and blocks
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        log.close()
        self.running.append(proc)
        self.logs[proc.pid] = _LOGS[proc.pid] = log_path
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        stop(proc)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.running):
            self.stop(proc)


def check_alive(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        tail = ""
        if proc.pid in _LOGS:
            tail = "\n".join(_LOGS[proc.pid].read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}:\n{tail}")


def wait_log(proc: subprocess.Popen, path: Path, marker: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        check_alive(proc)
        if marker in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args!r} did not print {marker!r} in {limit:g}s")


def wait_healthy(proc: subprocess.Popen, url: str, limit: float = 90) -> float:
    """Seconds until GET /healthz answers 200, bounded."""
    started = time.monotonic()
    while time.monotonic() < started + limit:
        check_alive(proc)
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {limit:g}s")


def commits(database: str) -> int:
    """Committed transactions on ``database`` (the server's statistics lag up to ~1 s)."""
    with psycopg.connect(admin_url(PG_URL), autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
    return int(row[0]) if row else 0


def count_rows(url: str, sql: str) -> int:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        return int(conn.execute(sql).fetchone()[0])


# -- scenarios ---------------------------------------------------------------------


def measure_plain(procs: Procs, name: str, cmd: list[str], args) -> dict:
    proc = procs.start(name, cmd)
    try:
        wait_log(proc, procs.logs[proc.pid], "ready")
        time.sleep(args.every)
        return sample(proc, args.sample, args.every)
    finally:
        procs.stop(proc)


def measure_replica(procs: Procs, name: str, url: str, database: str, args) -> dict:
    port = free_port()
    config = procs.workdir / f"{name}.yaml"
    config.write_text(CONFIG.format(url=url, port=port, interval=args.interval))
    env = dict(kv.split("=", 1) for kv in args.replica_env)
    proc = procs.start(name, [sys.executable, "-m", "bridge", "run", "--config", str(config)], env)
    try:
        ready = wait_healthy(proc, f"http://127.0.0.1:{port}/healthz")
        at_ready = status(proc.pid)
        before = commits(database)
        time.sleep(args.settle)
        result = sample(proc, args.sample, args.every)
        time.sleep(1.1)  # the server's statistics flush at most once a second
        log = procs.logs[proc.pid].read_text(errors="replace")
        result |= {
            "ready_seconds": round(ready, 2),
            "rss_at_ready_bytes": at_ready["VmRSS"],
            "commits_while_running": commits(database) - before,
            "failed_ticks": log.count("failed:"),
        }
        return result
    finally:
        procs.stop(proc)


def seed_database(name: str, count: int, now: datetime) -> tuple[str, float]:
    from bridge.store.db import make_engine, upgrade

    url = fresh_database(PG_URL, name)
    engine = make_engine(url)
    started = time.perf_counter()
    upgrade(engine)
    seed_assignments(engine, count, now=now, due_reminders=False)
    engine.dispose()
    return url, time.perf_counter() - started


def measure_overdue(procs: Procs, url: str, count: int, args) -> dict:
    """A replica whose write-back finds ``count`` assignments past due with no report."""
    port = free_port()
    config = procs.workdir / "overdue.yaml"
    config.write_text(CONFIG.format(url=url, port=port, interval=args.interval))
    env = dict(kv.split("=", 1) for kv in args.replica_env)
    cmd = [sys.executable, "-m", "bridge", "run", "--config", str(config)]
    proc = procs.start("overdue", cmd, env)
    started = time.monotonic()
    peak = 0
    planned = 0
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}/healthz")
        deadline = started + args.overdue_limit
        while time.monotonic() < deadline:
            check_alive(proc)
            peak = max(peak, status(proc.pid)["VmRSS"])
            planned = count_rows(url, "SELECT count(*) FROM writeback")
            if planned >= count:
                break
            time.sleep(args.every)
        return {
            "assignments": count,
            "planned_notes": planned,
            "plan_seconds": round(time.monotonic() - started, 1),
            "rss_max_bytes": peak,
            "hwm_bytes": max(peak, status(proc.pid)["VmHWM"]),
            "finished": planned >= count,
        }
    finally:
        procs.stop(proc)


def probe(stub: list[str], pre: list[str], mods: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(stub), json.dumps(pre), json.dumps(mods)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_path_by_package() -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", ATTRIBUTE, json.dumps(RUN_PATH)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return {"total": found["after"] - found["before"], **found["cost"]}


def import_costs() -> list[dict]:
    full = probe([], [], RUN_PATH)
    run_path = full["after"]
    rows = []
    for label, mods, stub in IMPORT_PROBES:
        alone = probe([], [], mods)
        row = {"module": label, "alone_mib": mib(alone["after"] - alone["before"])}
        if stub:
            without = probe(stub, [], RUN_PATH)
            if without.get("error"):
                row["run_path_saving_mib"] = None
            else:
                row["run_path_saving_mib"] = mib(run_path - without["after"])
        rows.append(row)
    return rows


# -- report ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignments", type=int, default=100_000)
    parser.add_argument("--interval", type=float, default=0.5, help="every job's interval (s)")
    parser.add_argument("--settle", type=float, default=3.0, help="jobs run before sampling (s)")
    parser.add_argument("--sample", type=float, default=4.0, help="sampling window (s)")
    parser.add_argument("--every", type=float, default=0.5, help="sampling period (s)")
    parser.add_argument("--skip-imports", action="store_true", help="leave out the import table")
    parser.add_argument("--overdue", type=int, default=0, help="add the overdue scenario (N)")
    parser.add_argument("--overdue-limit", type=float, default=300, help="its time bound (s)")
    parser.add_argument(
        "--replica-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for the replicas, e.g. MALLOC_ARENA_MAX=2",
    )
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    procs = Procs(workdir)
    made: list[str] = []
    try:
        bare = measure_plain(procs, "bare", [sys.executable, "-c", BARE], args)
        deps = measure_plain(procs, "deps", [sys.executable, "-c", DEPS_ONLY, *DEPENDENCIES], args)

        made.append(DB_IDLE)
        idle_url = fresh_database(PG_URL, DB_IDLE)
        idle = measure_replica(procs, "idle", idle_url, DB_IDLE, args)

        made.append(DB_LOADED)
        loaded_url, seed_seconds = seed_database(DB_LOADED, args.assignments, datetime.now(UTC))
        loaded = measure_replica(procs, "loaded", loaded_url, DB_LOADED, args)
        loaded["seed_seconds"] = round(seed_seconds, 1)
        loaded["open_assignments"] = count_rows(
            loaded_url, "SELECT count(*) FROM assignment WHERE status = 'requested'"
        )

        overdue = None
        if args.overdue:
            made.append(DB_OVERDUE)
            # assigned 9 days ago, due 2 days ago: past the 24 h missed-note grace
            url, _ = seed_database(DB_OVERDUE, args.overdue, datetime.now(UTC) - timedelta(days=9))
            with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute("UPDATE reminder SET state = 'cancelled'")  # write-back only
            overdue = measure_overdue(procs, url, args.overdue, args)

        imports = [] if args.skip_imports else import_costs()
        by_package = {} if args.skip_imports else run_path_by_package()
    finally:
        procs.stop_all()
        for name in made:
            drop_database(PG_URL, name)
    shutil.rmtree(workdir)  # kept, with the replicas' logs, when something failed

    idle_delta = idle["rss_max_bytes"] - bare["rss_max_bytes"]
    loaded_delta = loaded["rss_max_bytes"] - idle["rss_max_bytes"]
    idle_pass = idle_delta <= IDLE_TARGET_MIB * MIB
    loaded_pass = loaded["hwm_bytes"] < LOADED_TARGET_BYTES

    print(f"machine: {describe(machine())}")
    print(
        f"replicas: sandbox connector, console SMS, PostgreSQL, jobs every {args.interval:g}s; "
        f"sampled every {args.every:g}s for {args.sample:g}s after {args.settle:g}s of jobs"
    )
    print(f"{'process':>34}  {'RSS max':>9}  {'RSS last':>9}  {'peak HWM':>9}  (MiB)")
    rows = [
        ("a. bare asyncio", bare),
        ("d. dependency imports only", deps),
        ("b. idle replica (empty db)", idle),
        (f"c. replica, {args.assignments} assignments", loaded),
    ]
    for label, r in rows:
        print(
            f"{label:>34}  {mib(r['rss_max_bytes']):>9}  {mib(r['rss_last_bytes']):>9}  "
            f"{mib(r['hwm_bytes']):>9}"
        )
    for label, r in rows[2:]:
        print(
            f"{label:>34}: ready in {r['ready_seconds']}s at {mib(r['rss_at_ready_bytes'])} MiB; "
            f"{r['commits_while_running']} transactions committed while sampled; "
            f"{r['failed_ticks']} failed ticks"
        )
    print(f"{'seeding':>34}: {loaded['open_assignments']} open assignments in "
          f"{loaded['seed_seconds']}s")  # fmt: skip
    print(
        f"{'idle replica - bare asyncio':>34}: {mib(idle_delta):+} MiB "
        f"(target <= +{IDLE_TARGET_MIB} MiB: {'PASS' if idle_pass else 'MISS'} by "
        f"{abs(mib(idle_delta - IDLE_TARGET_MIB * MIB))} MiB)"
    )
    print(
        f"{'idle replica - dependency imports':>34}: "
        f"{mib(idle['rss_max_bytes'] - deps['rss_max_bytes']):+} MiB"
    )
    n = f"{args.assignments // 1000}k" if args.assignments >= 1000 else str(args.assignments)
    print(f"{n + ' replica - idle replica':>34}: {mib(loaded_delta):+} MiB")
    print(
        f"{n + ' replica peak':>34}: {loaded['hwm_bytes'] / 1e6:.1f} MB "
        f"(target < {LOADED_TARGET_BYTES / 1e6:.0f} MB: {'PASS' if loaded_pass else 'MISS'} by "
        f"{abs(LOADED_TARGET_BYTES - loaded['hwm_bytes']) / 1e6:.1f} MB)"
    )
    if overdue:
        growth = overdue["hwm_bytes"] - idle["rss_max_bytes"]
        overdue["growth_per_assignment_bytes"] = round(growth / overdue["assignments"])
        print(
            f"{'overdue write-back':>34}: {overdue['planned_notes']}/{overdue['assignments']} "
            f"missed notes planned in {overdue['plan_seconds']}s"
            f"{'' if overdue['finished'] else ' (stopped at --overdue-limit)'}, peak "
            f"{mib(overdue['hwm_bytes'])} MiB: {mib(growth):+} MiB over idle, "
            f"{growth / overdue['assignments'] / 1024:.1f} KiB per overdue assignment"
        )
    if by_package:
        total = by_package["total"]
        print(f"bridge run import path: {mib(total)} MiB over python (incl. asyncio); by package:")
        ranked = sorted(
            ((k, v) for k, v in by_package.items() if k != "total"), key=lambda kv: -kv[1]
        )
        bridge_own = sum(v for k, v in ranked if k.startswith(("bridge", "connectors")))
        shown = [(k, v) for k, v in ranked if not k.startswith(("bridge", "connectors"))][:16]
        shown.append(("bridge + connectors modules", bridge_own))
        rest = total - sum(v for _, v in shown)
        for k, v in sorted(shown, key=lambda kv: -kv[1]) + [("everything else", rest)]:
            print(f"{k:>50}  {mib(v):>6}")
    if imports:
        print(f"{'import cost (MiB)':>50}  {'alone':>6}  {'saved off run path':>18}")
        for row in imports:
            saving = row.get("run_path_saving_mib", "")
            saving = "n/a" if saving is None else saving
            print(f"{row['module']:>50}  {row['alone_mib']:>6}  {saving:>18}")

    def clean(r: dict) -> dict:
        return {k: v for k, v in r.items() if k != "samples"}

    result = {
        "benchmark": "memory",
        "machine": machine(),
        "assignments": args.assignments,
        "interval_seconds": args.interval,
        "replica_env": args.replica_env,
        "bare_asyncio": clean(bare),
        "dependency_imports": clean(deps),
        "idle_replica": clean(idle),
        "loaded_replica": clean(loaded),
        "idle_minus_bare_mib": mib(idle_delta),
        "idle_minus_dependencies_mib": mib(idle["rss_max_bytes"] - deps["rss_max_bytes"]),
        "loaded_minus_idle_mib": mib(loaded_delta),
        "idle_target_mib": IDLE_TARGET_MIB,
        "idle_pass": idle_pass,
        "loaded_target_bytes": LOADED_TARGET_BYTES,
        "loaded_peak_bytes": loaded["hwm_bytes"],
        "loaded_pass": loaded_pass,
        "overdue_writeback": overdue,
        "import_costs_mib": imports,
        "run_path_by_package_bytes": by_package,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
