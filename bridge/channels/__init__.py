"""Outbound channels: how a reminder reaches a client."""

from bridge.channels.base import Channel, OutboundMessage, PermanentSendError, SendResult

__all__ = ["Channel", "OutboundMessage", "PermanentSendError", "SendResult"]
