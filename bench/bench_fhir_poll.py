"""Benchmark: the fhir connector's full sync vs an incremental poll, and its parse cost.

A stand-in FHIR server (in-process, ``httpx.MockTransport``) holds 10 000 homework Tasks
for 2 000 clients written over 30 days. We time a full sync (cursor None), change 100
Tasks, and time the incremental poll from the saved cursor. Targets: the incremental poll
makes at most 3 % of the full sync's requests and takes at most 5 % of its time; parsing
one Task through the connector's path costs at most 1.2x ``Task.model_validate_json``.

Run: ``python bench/bench_fhir_poll.py [--tasks N]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
from fhir.resources.R4B.task import Task

from bridge.clock import ManualClock
from bridge.domain import AssignmentUpserted
from connectors.fhir_r4 import FhirConnector, FhirOptions
from connectors.fhir_r4 import mapping as m
from connectors.fhir_r4.testing import (
    FakeFhirServer,
    appointment_resource,
    iso,
    patient_resource,
    practitioner_resource,
    task_resource,
)

START = datetime(2026, 2, 1, 8, tzinfo=UTC)
SPAN = timedelta(days=30)


def build_server(tasks: int, clients: int, seed: int) -> FakeFhirServer:
    rng = random.Random(seed)
    server = FakeFhirServer(start=START - timedelta(days=1), step=timedelta(seconds=1))
    for i in range(20):
        server.put(practitioner_resource(f"dr{i}", name=(f"Clin{i}", "Ician")))
    for i in range(clients):
        server.put(patient_resource(f"p{i}", phone=f"+1312555{i:04d}", language="en-US"))
    server.step = SPAN / tasks
    server.now = START
    for i in range(tasks):
        patient = f"p{i % clients}"
        authored = iso(server.now)
        due = None if i % 10 == 0 else iso(server.now + timedelta(days=7))
        server.put(
            task_resource(
                f"t{i}",
                patient=patient,
                requester=f"dr{rng.randrange(20)}",
                authored=authored,
                due=due,
                description=f"Homework {i}",
            )
        )
    end = server.now
    for i in range(clients):
        server.put(appointment_resource(f"a{i}", f"p{i}", iso(end + timedelta(days=3))), at=START)
    return server


def run_poll(connector: FhirConnector, server: FakeFhirServer, cursor: str | None):
    before = len(server.requests)
    started = time.perf_counter()
    pages = events = upserts = rejections = 0
    last = cursor
    for page in connector.poll(cursor):
        pages += 1
        events += len(page.events)
        upserts += sum(isinstance(e, AssignmentUpserted) for e in page.events)
        rejections += len(page.rejections)
        last = page.cursor
    elapsed = time.perf_counter() - started
    made = server.requests[before:]
    return {
        "requests": len(made),
        "appointment_requests": sum(r.url.path.endswith("/Appointment") for r in made),
        "seconds": round(elapsed, 4),
        "pages": pages,
        "events": events,
        "assignments": upserts,
        "rejections": rejections,
    }, last


def parse_cost(server: FakeFhirServer, rounds: int) -> dict[str, float]:
    """Per-Task cost: the connector's path (one json.loads per Bundle, validate each entry
    from the dict) vs ``Task.model_validate_json`` on each entry's own JSON text."""
    tasks = sorted(server.all("Task"), key=lambda t: t["id"])[:100]
    bundle = json.dumps(
        {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": t} for t in tasks]}
    ).encode()
    texts = [json.dumps(t).encode() for t in tasks]

    def ours() -> None:
        page = m.split_bundle(json.loads(bundle), "Task")
        for raw in page.matches:
            m.validate(raw, "Task")

    def reference() -> None:
        for text in texts:
            Task.model_validate_json(text)

    timings: dict[str, list[float]] = {"ours": [], "reference": []}
    for _ in range(rounds):
        for name, fn in (("ours", ours), ("reference", reference)):
            started = time.perf_counter()
            fn()
            timings[name].append((time.perf_counter() - started) / len(tasks))
    ours_us = statistics.median(timings["ours"]) * 1e6
    ref_us = statistics.median(timings["reference"]) * 1e6
    return {
        "ours_us_per_task": round(ours_us, 2),
        "model_validate_json_us_per_task": round(ref_us, 2),
        "ratio": round(ours_us / ref_us, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=2_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--appointment-cache", type=float, default=3600.0)
    parser.add_argument(
        "--no-include", action="store_true", help="a server without Task _include support"
    )
    args = parser.parse_args(argv)

    server = build_server(args.tasks, args.clients, args.seed)
    server.includes = not args.no_include
    clock = ManualClock(server.now + timedelta(hours=1))
    options = FhirOptions(
        base_url=server.base,
        page_size=args.page_size,
        lookback_seconds=300,
        appointment_cache_seconds=args.appointment_cache,
    )
    http = httpx.Client(transport=server.transport())
    connector = FhirConnector("bench", options, clock=clock, http=http, sleep=lambda _s: None)

    full, cursor = run_poll(connector, server, None)

    rng = random.Random(args.seed + 1)
    server.step = timedelta(seconds=1)
    for i in rng.sample(range(args.tasks), args.changed):
        task = server.read("Task", f"t{i}")
        task["description"] = f"Homework {i} (revised)"
        server.put(task)
    clock.advance(timedelta(minutes=10))
    incremental, _ = run_poll(connector, server, cursor)
    parsing = parse_cost(server, rounds=30)
    connector.close()

    req_ratio = incremental["requests"] / full["requests"]
    time_ratio = incremental["seconds"] / full["seconds"]
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(
        f"server: {args.tasks} Tasks, {args.clients} clients, pages of {args.page_size}, "
        f"Task _include {'off' if args.no_include else 'on'}, "
        "10% of Tasks without a due date (Appointment search)"
    )
    for label, r in (("full sync", full), (f"incremental ({args.changed} changed)", incremental)):
        print(
            f"{label:>26}: {r['requests']:>6} requests {r['seconds']:>8.3f} s "
            f"{r['pages']:>4} pages {r['assignments']:>6} assignments "
            f"{r['rejections']} rejections"
        )
    print(
        f"{'':>26}  Appointment searches: full {full['appointment_requests']}, incremental "
        f"{incremental['appointment_requests']} (next sessions cached "
        f"{options.appointment_cache_seconds:g}s; --appointment-cache 0 asks every poll)"
    )
    print(
        f"{'ratios':>26}: requests {req_ratio:.2%} (target <= 3%), time {time_ratio:.2%} "
        "(target <= 5%)"
    )
    print(
        f"{'parse per Task':>26}: ours {parsing['ours_us_per_task']} us, "
        f"Task.model_validate_json {parsing['model_validate_json_us_per_task']} us, "
        f"ratio {parsing['ratio']} (target <= 1.2)"
    )
    result = {
        "benchmark": "fhir_poll",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
        },
        "tasks": args.tasks,
        "include": not args.no_include,
        "appointment_cache_seconds": args.appointment_cache,
        "changed": args.changed,
        "full": full,
        "incremental": incremental,
        "request_ratio": round(req_ratio, 5),
        "time_ratio": round(time_ratio, 5),
        "parse": parsing,
        "targets_met": {
            "requests": req_ratio <= 0.03,
            "time": time_ratio <= 0.05,
            "parse": parsing["ratio"] <= 1.2,
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
