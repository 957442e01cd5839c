"""What every benchmark here needs: the machine it ran on, a free port, a process stopped."""

from __future__ import annotations

import os
import platform
import socket
import subprocess


def machine() -> dict:
    """The figures a result is only meaningful next to."""
    memory = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "memory_bytes": memory}  # fmt: skip


def describe(info: dict) -> str:
    return (f"{info['platform']}, {info['cpus']} CPUs, Python {info['python']}, "
            f"{info['memory_bytes'] / 2**30:.1f} GiB RAM")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it will not go."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
