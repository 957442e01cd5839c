"""The channel contract. A channel sends one message and says what the provider said."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bridge.errors import FatalError


@dataclass(frozen=True)
class OutboundMessage:
    """One message. ``body`` is the SMS text or the email's plain-text part."""

    reminder_id: int
    to: str
    body: str
    subject: str | None = None
    html: str | None = None


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str | None  # None: accepted, but the provider's answer named no id


class PermanentSendError(FatalError):
    """The provider refused for good. ``consequence`` says what the bridge must remember."""

    def __init__(self, message: str, *, code: int | None = None, consequence: str | None = None):
        super().__init__(message)
        self.code = code
        self.consequence = (
            consequence  # "opted_out" | "unusable_number" | "unusable_address" | None
        )


class Channel(Protocol):
    name: str

    def send(self, message: OutboundMessage) -> SendResult:
        """Send once. Raise RetriableError (try later) or PermanentSendError (never again)."""
        ...
