"""The bridge's error families, decided once and acted on everywhere.

BridgeError
 ├── ConfigError        the deployment is misconfigured; stop before touching anything
 ├── FatalError         this item can never succeed; record the reason, do not retry
 ├── RetriableError     transient (timeout, 5xx, 429); retry later, bounded
 └── SkippableError     this one input is bad; record a rejection, carry on with the rest
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class FatalError(BridgeError):
    pass


class RetriableError(BridgeError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AmbiguousError(BridgeError):
    pass


class SkippableError(BridgeError):
    pass


class ContactError(SkippableError):
    """A client has no usable phone or email."""
