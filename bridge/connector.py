"""The connector contract: what every EHR or portal plugin provides.

A connector turns its source's data into :mod:`bridge.domain` events, page by page, and
writes notes back. It never touches the store: the core upserts the events and saves the
cursor in the same transaction, so a crash re-reads a page rather than skipping it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

from bridge.clock import Clock
from bridge.domain import Event, NoteWrite, Page

if TYPE_CHECKING:  # httpx loads its command-line tool too; the sandbox never needs it
    import httpx


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookRejected(Exception):
    """The sender could not be verified: answer 403 and store nothing."""


class Connector(ABC):
    """Base class for plugins registered in the ``bridge.connectors`` entry-point group."""

    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(
        self, name: str, options: BaseModel, *, clock: Clock, http: httpx.Client | None = None
    ) -> None:
        self.name = name
        self.options = options
        self.clock = clock
        self.http = http

    @abstractmethod
    def poll(self, cursor: str | None) -> Iterator[Page]:
        """Yield the changes since ``cursor``, one page at a time, each with its own cursor."""

    @abstractmethod
    def write_note(self, note: NoteWrite) -> str:
        """Land one note in the source; return its id there. Must be safe to repeat."""

    def handle_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """Verify the sender from headers and raw body, then parse. Raise WebhookRejected."""
        raise NotImplementedError

    @property
    def accepts_webhooks(self) -> bool:
        return type(self).handle_webhook is not Connector.handle_webhook

    def describe(self) -> list[str]:
        """Lines for ``bridge check``: what this connector will do."""
        return []

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
