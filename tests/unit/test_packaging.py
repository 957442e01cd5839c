"""What ships: the image, the CI script and the README's commands agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfile_is_slim_non_root_with_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]-slim", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["bridge", "run"]' in text


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    test_cmd = next(b.strip() for b in blocks if "pytest" in b)
    assert test_cmd in ci
    assert any("bridge demo" in b for b in blocks)


def test_no_wall_clock_outside_the_clock_module():
    """One injected clock: nothing in the bridge asks the system for the time itself."""
    pattern = re.compile(r"datetime\.(now|utcnow|today)\(|date\.today\(|time\.time\(")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for base in ("bridge", "connectors")
        for path in (ROOT / base).rglob("*.py")
        if path.name != "clock.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_migrations_and_templates_ship_with_a_plain_install(tmp_path):
    """A non-editable wheel carries the migrations (templates come from BRIDGE_TEMPLATES_DIR)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    import zipfile

    [wheel] = tmp_path.glob("homework_bridge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bridge/store/migrations/env.py" in names
    assert any(n.startswith("bridge/store/migrations/versions/0001") for n in names)
    assert "connectors/sandbox.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "sandbox = connectors.sandbox:SandboxConnector"
        in zipfile.ZipFile(wheel).read(entry).decode()
    )
