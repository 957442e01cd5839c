"""``bridge run``: a real process migrates its database, serves /healthz and runs its ticks."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import httpx
import pytest

from bridge.store.db import current_revision, head_revision, make_engine

CONFIG = """
practice:
  name: Smoke Practice
  contact: "(312) 555-0100"
database:
  url: {url}
server:
  host: 127.0.0.1
  port: {port}
connectors:
  - name: ehr
    type: sandbox
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, limit: float = 60) -> httpx.Response:
    """Readiness of a starting process, bounded; not a wait on any schedule."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"bridge run exited early: {proc.stdout.read()}")
        try:
            return httpx.get(url, timeout=1)
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail("bridge run did not answer /healthz")


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_bridge_run_serves_health_on_a_migrated_database(store, tmp_path, request):
    url = (
        f"sqlite:///{tmp_path / 'run.db'}"
        if store == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(url=url, port=port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        response = wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok", "connectors": ["ehr"]}
        assert current_revision(make_engine(url)) == head_revision()
        token = "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"  # shaped like a client link's token
        assert httpx.get(f"http://127.0.0.1:{port}/c/{token}", timeout=5).status_code in (403, 404)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM as its exit status
    assert proc.returncode in (0, -15), out
    assert "Application shutdown complete." in out
    assert "Traceback" not in out
    assert "/c/" not in out  # no access log: request lines would carry client-link tokens


def test_bridge_run_refuses_a_bad_config_before_touching_anything(tmp_path):
    db = tmp_path / "never.db"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(url=f"sqlite:///{db}", port=8000).replace("sandbox", "epik"))
    out = subprocess.run(
        [sys.executable, "-m", "bridge", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "connectors[0].type: unknown connector 'epik'; available: " in out.stderr
    assert "sandbox" in out.stderr.split("available:")[1]
    assert not db.exists()


def test_a_second_process_on_one_sqlite_file_is_refused(tmp_path):
    db = tmp_path / "one.db"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(url=f"sqlite:///{db}", port=free_port()))
    first = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = int(re.search(r"port: (\d+)", config.read_text()).group(1))
        wait_healthy(f"http://127.0.0.1:{port}/healthz", first)
        second = subprocess.run(
            [sys.executable, "-m", "bridge", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2
        assert "another bridge process is already using" in second.stderr
        assert "PostgreSQL" in second.stderr
    finally:
        first.terminate()
        first.communicate(timeout=30)
