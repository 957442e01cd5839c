"""The completion page in a real headless browser, on a phone-sized screen."""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from sqlmodel import Session, select

from bridge.store.models import Completion
from bridge.web.app import create_app
from tests.factories import assignment, patient, seed

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is required in CI (.ci/run installs Debian's package)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def served(bridge):
    """The app on a real port, for the browser; the bridge's clock stays the test's."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(bridge), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "test server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def link_path(bridge) -> str:
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1"))
    ehr.assign(
        assignment(
            "hw-1",
            bridge.clock.now(),
            instructions="Write one record a day.",
            duration="10 minutes",
            success_criteria="Three records.",
        )
    )
    bridge.poll("ehr")
    bridge.dispatch()
    return re.search(r"(/c/[A-Za-z0-9_-]+)", bridge.channel.sent[0].body).group(1)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_client_reports_from_a_phone(bridge, served, browser, tmp_path):
    path = link_path(bridge)
    page = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page.goto(served + path)
    assert page.get_by_text("Write one record a day.").is_visible()

    # the form fits a phone: no sideways scrolling, tap targets at least 44 px tall
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for selector in (
        "label:has(input[name=status])",
        "label:has(input[name=quality])",
        "button[type=submit]",
    ):
        for box in (el.bounding_box() for el in page.query_selector_all(selector)):
            assert box["height"] >= 44 and box["x"] >= 0
            assert box["x"] + box["width"] <= PHONE["width"]
    shot = tmp_path / "completion-form-phone.png"
    page.screenshot(path=str(shot), full_page=True)
    width, height = png_size(shot)
    assert width == PHONE["width"] * 2 and height >= PHONE["height"]

    page.get_by_text("Partly", exact=True).click()
    page.fill("#times", "2")
    page.locator("label:has(input[name=quality][value='4'])").click()
    page.get_by_text("Too busy").click()
    page.fill("#note", "Did two on the bus.")
    page.get_by_role("button", name="Send to my therapist").click()
    page.wait_for_selector("text=Thank you")

    with Session(bridge.engine) as s:
        c = s.exec(select(Completion)).one()
    assert (c.status, c.quantity, c.quality, c.barriers, c.reflection, c.source) == (
        "partial",
        2,
        4,
        "too_busy",
        "Did two on the bus.",
        "page",
    )

    # coming back shows the answer, and changing it updates the same report
    page.get_by_text("Change my answer").click()
    assert page.is_checked("input[name=status][value=partial]")
    page.get_by_text("Done", exact=True).click()
    page.get_by_role("button", name="Send to my therapist").click()
    page.wait_for_selector("text=Thank you")
    with Session(bridge.engine) as s:
        assert [c.status for c in s.exec(select(Completion)).all()] == ["done"]
    page.close()


def test_expired_link_shows_a_friendly_page(bridge, served, browser):
    from datetime import timedelta

    path = link_path(bridge)
    bridge.clock.advance(timedelta(days=15))
    page = browser.new_page(viewport=PHONE)
    response = page.goto(served + path)
    assert response.status == 410
    assert page.get_by_text("This link has expired").is_visible()
    page.close()
