"""A small HTTP/1.1 load generator on bare asyncio streams, for benchmarks.

Each of ``connections`` keep-alive connections sends its share of pre-built requests one
after another and reads each answer. Building the requests before the clock starts (and
keeping the client this thin) leaves the CPU to the server being measured.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from urllib.parse import urlencode


def form_request(host: str, path: str, form: dict[str, str], headers: dict[str, str]) -> bytes:
    body = urlencode(form).encode()
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def blast(host: str, port: int, requests: list[bytes], connections: int) -> dict:
    """Send every request; return elapsed seconds, requests/s and status counts."""
    statuses: Counter[int] = Counter()
    shares = [requests[i::connections] for i in range(connections)]

    async def one_connection(share: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for request in share:
                writer.write(request)
                statuses[await _read_response(reader)] += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one_connection(s) for s in shares if s))
    elapsed = time.perf_counter() - start
    return {"requests": len(requests), "seconds": elapsed, "per_second": len(requests) / elapsed,
            "statuses": dict(statuses)}  # fmt: skip
