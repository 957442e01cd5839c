"""Two real `bridge run` replicas on one PostgreSQL; one is SIGKILLed mid-dispatch.

A local stand-in for Twilio's Messages API counts what it receives and, like Twilio,
posts a signed status callback (carrying the reminder id) to the bridge's public URL.
Afterwards every reminder must have been sent exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from sqlmodel import Session, func, select
from twilio.request_validator import RequestValidator

from bridge.store.models import Reminder
from tests.conftest import build_bridge, make_settings
from tests.e2e.test_run import free_port
from tests.factories import assignment, patient, seed

SID = "AC" + "1" * 32
TOKEN = "replica-test-token"
CLIENTS = int(os.environ.get("REPLICA_TEST_CLIENTS", "2000"))


class StandInTwilio:
    """Accepts messages after a short latency and calls back 'delivered', signed."""

    def __init__(self) -> None:
        self.received: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/2010-04-01/Accounts/{account}/Messages.json")(self.create)
        self.callbacks: set[asyncio.Task] = set()
        self.client: httpx.AsyncClient | None = None

    async def create(self, account: str, request: Request) -> Response:
        form = dict((await request.form()).items())
        callback = form["StatusCallback"]
        reminder_id = int(parse_qs(urlparse(callback).query)["reminder"][0])
        with self.lock:
            self.received[reminder_id] += 1
        await asyncio.sleep(0.02)
        sid = "SM" + uuid.uuid4().hex
        task = asyncio.create_task(self.call_back(callback, sid))
        self.callbacks.add(task)
        task.add_done_callback(self.callbacks.discard)
        body = {
            "sid": sid,
            "account_sid": account,
            "to": form["To"],
            "status": "queued",
            "body": form["Body"],
            "date_created": None,
        }
        return Response(json.dumps(body), status_code=201, media_type="application/json")

    async def call_back(self, url: str, sid: str) -> None:
        form = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": SID}
        signature = RequestValidator(TOKEN).compute_signature(url, form)
        if self.client is None:  # one client: making one per callback costs more than the call
            self.client = httpx.AsyncClient(timeout=5)
        for _ in range(20):
            try:
                r = await self.client.post(
                    url, data=form, headers={"X-Twilio-Signature": signature}
                )
                if r.status_code < 500:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)


def serve(app, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    return server


def wait_ready(url: str, limit: float = 60) -> None:
    """Readiness of a starting replica, bounded; not a wait on any schedule."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not become ready")


def daytime_zone(now: datetime) -> str:
    """A zone where it is mid-day now, so quiet hours never hold the test up."""
    for zone in (
        "America/Chicago",
        "Europe/Berlin",
        "Asia/Tokyo",
        "Pacific/Auckland",
        "America/Los_Angeles",
        "Asia/Kolkata",
        "America/Sao_Paulo",
    ):
        if 10 <= now.astimezone(ZoneInfo(zone)).hour < 18:
            return zone
    return "UTC"


CONFIG = """
practice:
  name: Replica Practice
  contact: "(312) 555-0100"
database:
  url: {url}
server:
  host: 127.0.0.1
  port: {port}
  public_url: http://127.0.0.1:{public_port}
connectors:
  - name: ehr
    type: sandbox
    poll_interval_seconds: 3600
channels:
  sms: twilio
  twilio:
    account_sid: {sid}
    auth_token: {token}
    from_number: "+13125550199"
    api_base_url: http://127.0.0.1:{twilio_port}
scheduler:
  dispatch_interval_seconds: 0.3
  writeback_interval_seconds: 3600
  batch_size: 40
  lease_seconds: 3
  unknown_outcome_wait_seconds: 6
"""


def test_sigkill_mid_dispatch_sends_every_reminder_exactly_once(pg_url, tmp_path):
    from bridge.clock import SystemClock

    clock = SystemClock()
    now = clock.now()
    zone = daytime_zone(now)
    seeder = build_bridge(pg_url, clock, make_settings())  # type: ignore[arg-type]
    ehr = seeder.connectors["ehr"]
    seed(ehr, *[patient(f"p{i}", f"+1312{2000000 + i:07d}", timezone=zone) for i in range(CLIENTS)])
    for i in range(CLIENTS):
        ehr.assign(assignment(f"hw-{i}", now - timedelta(minutes=1), patient_ext=f"p{i}"))
    ehr.options = ehr.options.model_copy(update={"page_size": 500})
    seeder.poll("ehr")
    with Session(seeder.engine) as s:
        due = s.exec(select(Reminder.id).where(Reminder.step == "on_assign")).all()
    assert len(due) == CLIENTS
    seeder.close()

    twilio = StandInTwilio()
    twilio_port = free_port()
    twilio_server = serve(twilio.app, twilio_port)
    ports = [free_port(), free_port()]
    procs = []
    for name, port in zip("ab", ports, strict=True):
        config = tmp_path / f"{name}.yaml"
        config.write_text(
            CONFIG.format(
                url=pg_url,
                port=port,
                public_port=ports[1],
                sid=SID,
                token=TOKEN,
                twilio_port=twilio_port,
            )
        )
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - a pipe nobody reads fills up
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bridge", "run", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        )
    try:
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}/healthz")
        deadline = time.monotonic() + 120
        while sum(twilio.received.values()) < CLIENTS // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen_at_kill = sum(twilio.received.values())
        procs[0].send_signal(signal.SIGKILL)  # replica A dies mid-dispatch
        procs[0].wait(timeout=10)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with Session(build_engine(pg_url)) as s:
                settled = s.exec(
                    select(func.count())
                    .select_from(Reminder)
                    .where(Reminder.step == "on_assign", Reminder.state.in_(["sent", "delivered"]))
                ).one()
            if settled == CLIENTS and len(twilio.received) == CLIENTS:
                break
            time.sleep(0.5)
        else:
            with Session(build_engine(pg_url)) as s:
                states = Counter(
                    s.exec(
                        select(Reminder.state, Reminder.last_error).where(
                            Reminder.step == "on_assign"
                        )
                    )
                )
            pytest.fail(
                f"not settled: {states.most_common(5)}; provider saw "
                f"{len(twilio.received)} of {CLIENTS}"
            )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        twilio_server.should_exit = True
    assert CLIENTS // 4 <= seen_at_kill < CLIENTS  # the kill came in the middle
    assert sorted(twilio.received) == sorted(due)  # every reminder reached the provider
    assert max(twilio.received.values()) == 1  # and none twice
    with Session(build_engine(pg_url)) as s:
        states = Counter(s.exec(select(Reminder.state).where(Reminder.step == "on_assign")))
    assert set(states) <= {"sent", "delivered"}


_engines: dict[str, object] = {}


def build_engine(url: str):
    from bridge.store.db import make_engine

    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]
