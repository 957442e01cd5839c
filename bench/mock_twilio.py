"""A local stand-in for Twilio's Messages API that answers every create after a fixed latency.

It is written on bare asyncio streams so that, on a small machine, the stand-in costs
far less CPU than the bridge it measures. It speaks enough HTTP/1.1 for keep-alive
clients, answers ``201`` with a Message resource as Twilio does, and counts each
message by its reminder id (from the StatusCallback URL, else the To number) so a
benchmark can check that nothing was sent twice. ``GET /stats`` reports the counts.

Run: ``python bench/mock_twilio.py --port 8901 --latency 0.05``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import Counter
from urllib.parse import parse_qs, parse_qsl, urlparse


class MockTwilio:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.received: Counter[str] = Counter()
        self.first: float | None = None
        self.last: float | None = None
        self.in_flight = 0
        self.peak_in_flight = 0
        self.sids = itertools.count(1)

    def stats(self) -> dict:
        return {
            "requests": sum(self.received.values()),
            "distinct": len(self.received),
            "duplicates": sum(n - 1 for n in self.received.values() if n > 1),
            "first": self.first,
            "last": self.last,
            "peak_in_flight": self.peak_in_flight,
        }

    def reset(self) -> None:
        self.received.clear()
        self.first = self.last = None
        self.peak_in_flight = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                status, payload = await self.route(method, target, body)
                data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def route(self, method: str, target: str, body: bytes) -> tuple[str, dict]:
        path = urlparse(target).path
        if method == "GET" and path == "/stats":
            return "200 OK", self.stats()
        if method == "POST" and path == "/reset":
            self.reset()
            return "200 OK", {}
        if method == "POST" and path.endswith("/Messages.json"):
            return await self.create(path, body)
        return "404 Not Found", {"code": 20404, "message": "not found", "status": 404}

    async def create(self, path: str, body: bytes) -> tuple[str, dict]:
        now = time.time()
        self.first = self.first if self.first is not None else now
        form = dict(parse_qsl(body.decode()))
        callback = form.get("StatusCallback")
        key = form.get("To", "")
        if callback:
            key = parse_qs(urlparse(callback).query).get("reminder", [key])[0]
        self.received[key] += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        self.last = time.time()
        account = path.split("/")[3]
        return "201 Created", {
            "sid": f"SM{next(self.sids):032x}",
            "account_sid": account,
            "to": form.get("To"),
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": form.get("Body"),
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": None,
            "error_code": None,
            "error_message": None,
            "uri": f"{path[:-5]}/SM.json",
        }


async def serve(port: int, latency: float) -> None:
    mock = MockTwilio(latency)
    server = await asyncio.start_server(mock.handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency))


if __name__ == "__main__":
    main()
