"""The console channel: messages go to a stream or a list, for the demo and development."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TextIO

from bridge.channels.base import OutboundMessage, SendResult
from bridge.contacts import mask_phone


@dataclass
class ConsoleChannel:
    stream: TextIO | None = None
    name: str = "sms"
    sent: list[OutboundMessage] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, message: OutboundMessage) -> SendResult:
        with self._lock:
            self.sent.append(message)
            sid = f"CONSOLE{len(self.sent):08d}"
        if self.stream is not None:
            self.stream.write(f"[sms → {mask_phone(message.to)}] {message.body}\n")
        return SendResult(provider_message_id=sid)
