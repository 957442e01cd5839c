"""Benchmark: reminders dispatched per second by one and by two replicas on PostgreSQL.

A local stand-in for Twilio's Messages API (``bench/mock_twilio.py``) answers every
create after 50 ms and counts what it receives. 50 000 reminders are due at once. We
measure, in one run:

1. senders: sends per second through the channel with ``c`` concurrent senders, as the
   bridge sends (a client per sender, ``TwilioSmsChannel``) and with one shared httpx
   client, against the ideal ``c / latency``: the measurement behind the design;
2. the raw claim rate of the database: the same ``FOR UPDATE SKIP LOCKED`` claim that
   dispatch uses, batch after batch, with no sending;
3. one ``bridge run`` replica draining the backlog at the configured send concurrency,
   reminders per second at the stand-in (first to last request), against the ideal;
4. two replicas draining the same backlog (reset), and their speed-up over one.

Every reminder must reach the stand-in exactly once in both runs. Targets: a replica
reaches >= 80 % of concurrency / latency, and two replicas >= 1.8x one.

Run: ``python bench/bench_dispatch.py [--reminders 50000] [--concurrency 20]``.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import describe, free_port, machine, stop  # noqa: E402
from bench.seed import drop_database, fresh_database, reset_reminders, seed_assignments  # noqa: E402
from bridge.channels.base import OutboundMessage  # noqa: E402
from bridge.channels.twilio_sms import TwilioSmsChannel  # noqa: E402
from bridge.config import TwilioSettings  # noqa: E402
from bridge.store.db import make_engine, session_scope, upgrade  # noqa: E402
from bridge.store.models import Reminder  # noqa: E402
from bridge.store.outbox import claim  # noqa: E402

PG = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
DB_NAME = "bridge_bench_dispatch"
ACCOUNT = "AC" + "1" * 32
TOKEN = "bench-auth-token"

CONFIG = """
practice: {{name: Bench Practice, contact: "(312) 555-0100"}}
database: {{url: "{url}"}}
server: {{host: 127.0.0.1, port: {port}, public_url: "http://127.0.0.1:{port}"}}
connectors: [{{name: ehr, type: sandbox, poll_interval_seconds: 3600}}]
channels:
  sms: twilio
  twilio: {{account_sid: {account}, auth_token: {token}, from_number: "+13125550199",
           api_base_url: "http://127.0.0.1:{twilio_port}"}}
scheduler:
  dispatch_interval_seconds: 1
  writeback_interval_seconds: 3600
  batch_size: {batch}
  send_concurrency: {concurrency}
security: {{secret_key: "bench-secret-key-0123456789abcdef"}}
"""


def daytime_zone(now: datetime) -> str:
    """A zone where it is mid-day now, so quiet hours hold nothing back."""
    for zone in ("America/Chicago", "Europe/Berlin", "Asia/Tokyo", "Pacific/Auckland",
                 "America/Los_Angeles", "Asia/Kolkata", "America/Sao_Paulo"):  # fmt: skip
        if 10 <= now.astimezone(ZoneInfo(zone)).hour < 18:
            return zone
    return "UTC"


class Mock:
    def __init__(self, latency: float, log: Path) -> None:
        self.port = free_port()
        self.out = open(log, "w")  # noqa: SIM115 - a pipe nobody reads would stall it
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "mock_twilio.py"), "--port", str(self.port),
             "--latency", str(latency)], stdout=self.out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.base}/stats", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("the Twilio stand-in did not start")

    def stats(self) -> dict:
        return httpx.get(f"{self.base}/stats", timeout=5).json()

    def reset(self) -> None:
        httpx.post(f"{self.base}/reset", timeout=5)

    def close(self) -> None:
        stop(self.proc)
        self.out.close()


def senders(mock: Mock, concurrency: int, latency: float, shared: bool) -> float:
    """Sends per second through the channel with ``concurrency`` sender threads."""
    settings = TwilioSettings(account_sid=ACCOUNT, auth_token=TOKEN, from_number="+13125550199",
                              api_base_url=mock.base)  # fmt: skip
    http = httpx.Client() if shared else None
    channel = TwilioSmsChannel(settings, status_callback_base=None, http=http)
    count = concurrency * 40
    message = OutboundMessage(0, "+13125550101", "Riverside Counseling: a reminder.")

    def send(_: int) -> bool:
        try:
            channel.send(message)
            return True
        except Exception:  # a shared client misbehaving under threads counts as a failure
            return False

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, range(concurrency)))  # connections up
        start = time.perf_counter()
        ok = sum(pool.map(send, range(count)))
        elapsed = time.perf_counter() - start
    channel.close()
    return ok / elapsed


def claim_rate(engine, batch: int) -> float:
    """Rows per second claimed FOR UPDATE SKIP LOCKED in batches, nothing sent."""
    now = datetime.now(UTC)
    total, start = 0, time.perf_counter()
    while True:
        with session_scope(engine) as session:
            ids = claim(session, Reminder, now=now, limit=batch,
                        lease=timedelta(seconds=120), worker="bench")  # fmt: skip
        total += len(ids)
        if len(ids) < batch:
            break
    return total / (time.perf_counter() - start)


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def drain(replicas: int, url: str, mock: Mock, args, work: Path, expected: int) -> dict:
    """Start ``replicas`` bridge processes; time the backlog at the stand-in."""
    mock.reset()
    procs, logs = [], []
    try:
        for i in range(replicas):
            port = free_port()
            config = work / f"replica{i}.yaml"
            config.write_text(CONFIG.format(url=url, port=port, account=ACCOUNT, token=TOKEN,
                                            twilio_port=mock.port, batch=args.batch,
                                            concurrency=args.concurrency))  # fmt: skip
            log = open(work / f"replica{i}.log", "w")  # noqa: SIM115
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bridge", "run", "--config", str(config)],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            ))  # fmt: skip
        deadline = time.monotonic() + args.timeout
        stats = mock.stats()
        while stats["first"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
            stats = mock.stats()
        busy0, total0 = cpu_ticks()
        while stats["distinct"] < expected and time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"a replica exited; see {work}")
            time.sleep(0.5)
            stats = mock.stats()
        busy1, total1 = cpu_ticks()
        time.sleep(2)  # anything sent twice would arrive now
        stats = mock.stats()
    finally:
        for p in procs:
            p.terminate()  # all at once: they shut down in parallel
        for p in procs:
            stop(p)
        for log in logs:
            log.close()
    seconds = (stats["last"] - stats["first"]) if stats["first"] else float("nan")
    return {"replicas": replicas, "received": stats["requests"], "distinct": stats["distinct"],
            "duplicates": stats["duplicates"], "seconds": seconds,
            "per_second": stats["distinct"] / seconds if seconds else 0.0,
            "peak_in_flight": stats["peak_in_flight"],
            "machine_cpu_busy": (busy1 - busy0) / max(1, total1 - total0)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reminders", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    n, c, latency = args.reminders, args.concurrency, args.latency
    ideal = c / latency
    work = Path(tempfile.mkdtemp(prefix="bench_dispatch_"))
    mock = Mock(latency, work / "mock.log")
    url = fresh_database(PG, DB_NAME)
    engine = make_engine(url)
    results: dict = {}
    try:
        print(f"senders through the channel, {latency * 1000:.0f} ms provider latency:")
        sweep = []
        for conc in sorted({10, 20, 40, c}):
            own = senders(mock, conc, latency, shared=False)
            one = senders(mock, conc, latency, shared=True)
            sweep.append({"concurrency": conc, "ideal": conc / latency,
                          "own": round(own, 1), "shared": round(one, 1)})  # fmt: skip
            best = conc / latency
            print(f"  c={conc:3d}: transport per sender {own:6.0f}/s ({own / best:4.0%}),"
                  f" one shared client {one:6.0f}/s ({one / best:4.0%})")  # fmt: skip
        results["senders"] = sweep
        mock.reset()

        upgrade(engine)
        now = datetime.now(UTC)
        started = time.perf_counter()
        seed_assignments(engine, n, now=now, timezone=daytime_zone(now))
        print(f"seeded {n} due reminders in {time.perf_counter() - started:.0f} s")
        results["claim_per_second"] = claim_rate(engine, args.batch)
        print(f"raw claim rate (batch {args.batch}, no sending): "
              f"{results['claim_per_second']:.0f} rows/s")  # fmt: skip

        for replicas in (1, 2):
            reset_reminders(engine, now=datetime.now(UTC))
            run = drain(replicas, url, mock, args, work, n)
            results[f"replicas_{replicas}"] = run
            rate, best = run["per_second"], ideal * replicas
            print(f"{replicas} replica(s), concurrency {c} each: {rate:.0f} reminders/s"
                  f" ({run['distinct']} in {run['seconds']:.1f} s, {run['duplicates']} duplicates;"
                  f" ideal {best:.0f}/s, {rate / best:.0%};"
                  f" all cores {run['machine_cpu_busy']:.0%} busy)")  # fmt: skip
        with engine.connect() as conn:
            unsent = conn.execute(
                text("SELECT count(*) FROM reminder WHERE state NOT IN ('sent', 'delivered')")
            ).scalar_one()
    finally:
        engine.dispose()
        mock.close()
        drop_database(PG, DB_NAME)

    one, two = results["replicas_1"], results["replicas_2"]
    per_replica = one["per_second"] / ideal
    speedup = two["per_second"] / one["per_second"] if one["per_second"] else 0.0
    exact = all(r["distinct"] == n and r["duplicates"] == 0 for r in (one, two)) and unsent == 0
    print()
    print(f"machine: {describe(machine())}")
    print(f"one replica: {one['per_second']:.0f}/s = {per_replica:.0%} of ideal {ideal:.0f}/s"
          f" (target >= 80%): {'PASS' if per_replica >= 0.8 else 'MISS'}")  # fmt: skip
    print(f"two replicas: {two['per_second']:.0f}/s = {speedup:.2f}x one (target >= 1.8x): "
          f"{'PASS' if speedup >= 1.8 else 'MISS'}")  # fmt: skip
    print(
        f"raw claim rate: {results['claim_per_second']:.0f}/s = "
        f"{results['claim_per_second'] / one['per_second']:.1f}x one replica's send rate"
    )
    print(f"every reminder sent exactly once: {exact}")
    print(json.dumps({
        "benchmark": "dispatch", "machine": machine(), "reminders": n, "concurrency": c,
        "batch_size": args.batch, "latency_seconds": latency, "ideal_per_replica": ideal,
        "one_replica_per_second": round(one["per_second"], 1),
        "one_replica_of_ideal": round(per_replica, 3),
        "two_replicas_per_second": round(two["per_second"], 1),
        "two_replicas_speedup": round(speedup, 3),
        "claim_per_second": round(results["claim_per_second"], 1),
        "exactly_once": exact, "senders": results["senders"],
        "duplicates": [one["duplicates"], two["duplicates"]],
        "cpu_busy": [round(one["machine_cpu_busy"], 3), round(two["machine_cpu_busy"], 3)],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
