"""Benchmark: signed Twilio status callbacks per second into the bridge, against a bare endpoint.

The bridge's ``POST /webhooks/twilio/status`` verifies the signature (twilio's
RequestValidator over the public URL and the form), then records the new state in
PostgreSQL and answers 204 only once that is committed; concurrent callbacks share a
commit (``bridge/web/group_commit.py``). The baseline is a bare FastAPI endpoint that only
parses the same form (``await request.form()``) and answers 204. Both run in a server
process started the same way (``bridge.cli.serve``: uvicorn, one worker, same settings)
and are driven by the same load generator (``bench/loadgen.py``) with the same requests,
in the same run, alternating, best of ``--rounds``. Afterwards every callback must be
in the store. Target: the bridge reaches at least 50 % of the bare endpoint's rate.

Run: ``python bench/bench_webhook_ingest.py [--callbacks 20000] [--connections 32]``.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response
from sqlalchemy import text
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import describe, free_port, machine, stop  # noqa: E402
from bench.loadgen import blast, form_request  # noqa: E402
from bench.seed import drop_database, fresh_database, seed_assignments  # noqa: E402

PG = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
DB_NAME = "bridge_bench_ingest"
ACCOUNT = "AC" + "0" * 32
TOKEN = "bench-auth-token"

CONFIG = """
practice: {{name: Bench Practice, contact: "(312) 555-0100", timezone: UTC}}
database: {{url: "{url}"}}
server: {{host: 127.0.0.1, port: {port}, public_url: "http://127.0.0.1:{port}"}}
connectors: [{{name: ehr, type: sandbox}}]
channels:
  sms: twilio
  twilio: {{account_sid: {account}, auth_token: {token}, from_number: "+13125550199"}}
security: {{secret_key: "bench-secret-key-0123456789abcdef"}}
"""


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.post("/webhooks/twilio/status")
    async def status(request: Request) -> Response:
        await request.form()
        return Response(status_code=204)

    return app


def bridge_app(config: Path):
    from bridge.config import load_settings
    from bridge.service import Bridge
    from bridge.web.app import create_app

    return create_app(Bridge(load_settings(config)), run_scheduler=False)


def serve(kind: str, config: Path, port: int) -> None:
    import logging

    from bridge.cli import serve as serve_like_a_replica

    logging.basicConfig(level=logging.WARNING)
    app = bare_app() if kind == "bare" else bridge_app(config)
    serve_like_a_replica(app, "127.0.0.1", port)


def start(kind: str, config: Path, port: int, log: Path) -> subprocess.Popen:
    out = open(log, "w")  # noqa: SIM115 - a pipe nobody reads would fill and stall the server
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--config", str(config), "--port", str(port)],
        stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{kind} server did not start; see {log}")


def callbacks(port: int, ids: list[int], status: str) -> list[bytes]:
    """Signed status callbacks as Twilio sends them, one per reminder id."""
    validator = RequestValidator(TOKEN)
    host = f"127.0.0.1:{port}"
    out = []
    for rid in ids:
        path = f"/webhooks/twilio/status?reminder={rid}"
        sid = f"SM{rid:032x}"
        form = {
            "ApiVersion": "2010-04-01", "AccountSid": ACCOUNT, "MessageSid": sid, "SmsSid": sid,
            "MessageStatus": status, "SmsStatus": status, "To": "+13125550101",
            "From": "+13125550199",
        }  # fmt: skip
        signature = validator.compute_signature(f"http://{host}{path}", form)
        out.append(form_request(host, path, form, {"X-Twilio-Signature": signature}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", choices=["bare", "bridge"], help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.config, args.port)
        return

    from bridge.store.db import make_engine, upgrade

    n = args.callbacks
    url = fresh_database(PG, DB_NAME)
    engine = make_engine(url)
    upgrade(engine)
    seed_assignments(engine, n * args.rounds, now=datetime.now(UTC))
    with engine.begin() as conn:  # every reminder sent, waiting for its delivery callback
        conn.execute(text("UPDATE reminder SET state='sent', sent_at=now(),"
                          " provider_message_id='SM' || lpad(to_hex(id), 32, '0')"))  # fmt: skip
        ids = [row[0] for row in conn.execute(text("SELECT id FROM reminder ORDER BY id"))]

    work = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    port = free_port()
    config = work / "bridge.yaml"
    config.write_text(CONFIG.format(url=url, port=port, account=ACCOUNT, token=TOKEN))
    warmup = callbacks(port, ids[:500], "sent")
    rounds = [callbacks(port, ids[i * n : (i + 1) * n], "delivered") for i in range(args.rounds)]

    rates: dict[str, list[float]] = {"bare": [], "bridge": []}
    statuses: dict[str, dict] = {}
    try:
        for i in range(args.rounds):
            for kind in ("bare", "bridge"):
                proc = start(kind, config, port, work / f"{kind}.log")
                try:
                    asyncio.run(blast("127.0.0.1", port, warmup, args.connections))
                    result = asyncio.run(blast("127.0.0.1", port, rounds[i], args.connections))
                finally:
                    stop(proc)
                if result["statuses"] != {204: n}:
                    raise SystemExit(f"{kind} answered {result['statuses']}: not comparable")
                rates[kind].append(result["per_second"])
                statuses[kind] = result["statuses"]
                took = f"{result['requests']} in {result['seconds']:.2f} s"
                print(f"round {i + 1} {kind:6s}: {result['per_second']:8.0f} callbacks/s "
                      f"({took}) {result['statuses']}")  # fmt: skip
        with engine.connect() as conn:
            delivered = conn.execute(
                text("SELECT count(*) FROM reminder WHERE state='delivered'")
            ).scalar_one()
    finally:
        engine.dispose()
        drop_database(PG, DB_NAME)

    bare, bridge = max(rates["bare"]), max(rates["bridge"])
    ratio = bridge / bare
    durable = delivered == n * args.rounds and statuses["bridge"] == {204: n}
    print()
    print(f"machine: {describe(machine())}")
    print(f"bare FastAPI endpoint (await request.form()): {bare:8.0f} /s")
    print(f"bridge, signed + recorded before 204:         {bridge:8.0f} /s")
    print(f"ratio: {ratio:.0%} (target >= 50%)  {'PASS' if ratio >= 0.5 else 'MISS'}")
    print(f"every callback recorded: {durable} ({delivered} delivered)")
    print(json.dumps({
        "benchmark": "webhook_ingest", "machine": machine(), "callbacks_per_round": n,
        "connections": args.connections, "rounds": args.rounds,
        "bare_per_second": round(bare, 1), "bridge_per_second": round(bridge, 1),
        "ratio": round(ratio, 3), "target_ratio": 0.5, "all_recorded": durable,
        "bare_rounds": [round(r, 1) for r in rates["bare"]],
        "bridge_rounds": [round(r, 1) for r in rates["bridge"]],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
