"""The bridge assembled: settings, store, clock, connectors and channel in one object.

The scheduler, the web app, the CLI and the demo all drive the same four ticks:
``poll``, ``dispatch``, ``write_back`` (and ``tick`` for all of them).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import uuid
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from bridge import registry
from bridge.channels.base import Channel
from bridge.channels.console import ConsoleChannel
from bridge.clock import Clock, SystemClock
from bridge.config import Settings
from bridge.connector import Connector
from bridge.dispatch import DispatchStats, dispatch_due
from bridge.errors import ConfigError
from bridge.ingest import IngestStats, apply_page, read_cursor
from bridge.links import LinkKey
from bridge.rendering import Renderer
from bridge.store.db import make_engine, poll_lock, session_scope
from bridge.writeback import WriteBackStats, run_writebacks

log = logging.getLogger(__name__)


def build_connectors(settings: Settings, clock: Clock) -> dict[str, Connector]:
    """Every enabled connector, or ConfigError: one that cannot load stops start-up."""
    built: dict[str, Connector] = {}
    for conf in settings.connectors:
        if not conf.enabled:
            continue
        cls = registry.connector_class(conf.type)
        options = cls.Options.model_validate(conf.options)
        built[conf.name] = cls(conf.name, options, clock=clock)
    return built


def build_channel(settings: Settings) -> Channel | None:
    if settings.channels.sms == "twilio":
        from bridge.channels.twilio_sms import TwilioSmsChannel

        assert settings.channels.twilio is not None
        return TwilioSmsChannel(
            settings.channels.twilio, status_callback_base=settings.server.public_url
        )
    if settings.channels.sms == "none":
        return None
    return ConsoleChannel(stream=sys.stdout)


def build_email_channel(settings: Settings) -> Channel | None:
    if settings.channels.email == "sendgrid":
        from bridge.channels.sendgrid_email import SendGridEmailChannel

        assert settings.channels.sendgrid is not None
        return SendGridEmailChannel(settings.channels.sendgrid)
    if settings.channels.email == "console":
        return ConsoleChannel(stream=sys.stdout, name="email")
    return None


@dataclass
class TickStats:
    ingest: dict[str, IngestStats]
    dispatch: DispatchStats
    writeback: WriteBackStats


class Bridge:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        engine: Engine | None = None,
        connectors: dict[str, Connector] | None = None,
        channel: Channel | None = None,
        email_channel: Channel | None = None,
        renderer: Renderer | None = None,
        link_key: LinkKey | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.engine = engine or make_engine(settings.database.url)
        self.connectors = (
            connectors if connectors is not None else build_connectors(settings, self.clock)
        )
        self.channel = channel if channel is not None else build_channel(settings)
        self.email_channel = (
            email_channel if email_channel is not None else build_email_channel(settings)
        )
        secret = settings.security.secret_key
        self.link_key = link_key or (
            LinkKey.from_text(secret.get_secret_value()) if secret else LinkKey.ephemeral()
        )
        self.renderer = renderer or Renderer(
            settings.messages.templates_dir, settings.practice.default_language
        )
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def connector(self, name: str) -> Connector:
        try:
            return self.connectors[name]
        except KeyError:
            raise ConfigError(f"no connector named {name!r}") from None

    def poll(self, name: str) -> IngestStats:
        """Read every page since the stored cursor; each page commits with its cursor."""
        connector = self.connector(name)
        stats = IngestStats()
        with poll_lock(self.engine, name) as held:
            if not held:
                stats.skipped = True  # another replica is polling this connector
                return stats
            with session_scope(self.engine) as session:
                cursor = read_cursor(session, name)
            for page in connector.poll(cursor):
                with session_scope(self.engine) as session:
                    applied, rejected = apply_page(
                        session, name, page, self.settings, self.clock.now()
                    )
                stats.pages += 1
                stats.events += applied
                stats.rejected += rejected
        return stats

    def poll_all(self) -> dict[str, IngestStats]:
        return {name: self.poll(name) for name in self.connectors}

    def dispatch(self) -> DispatchStats:
        channels = {"sms": self.channel, "email": self.email_channel}
        return dispatch_due(
            self.engine,
            channels={k: v for k, v in channels.items() if v is not None},
            link_key=self.link_key,
            settings=self.settings,
            renderer=self.renderer,
            now=self.clock.now(),
            worker=self.worker_id,
        )

    def write_back(self) -> WriteBackStats:
        return run_writebacks(
            self.engine,
            connectors=self.connectors,
            settings=self.settings,
            renderer=self.renderer,
            now=self.clock.now(),
            worker=self.worker_id,
        )

    def tick(self) -> TickStats:
        return TickStats(self.poll_all(), self.dispatch(), self.write_back())

    def close(self) -> None:
        for connector in self.connectors.values():
            connector.close()
        for channel in (self.channel, self.email_channel):
            close = getattr(channel, "close", None)
            if close:
                close()
        self.engine.dispose()
