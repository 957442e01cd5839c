"""The one clock. Nothing else in the bridge asks the system for the time.

Schedule maths takes ``now`` as an argument; services hold a :class:`Clock` and
tests hand them a :class:`ManualClock` they can move forward.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware UTC datetime."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to (tests and the demo)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("time does not run backwards")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        when = when.astimezone(UTC)
        with self._lock:
            if when < self._now:
                raise ValueError("time does not run backwards")
            self._now = when


def ensure_utc(value: datetime) -> datetime:
    """Naive datetimes read back from SQLite are UTC by convention."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


__all__ = ["Clock", "ManualClock", "SystemClock", "ensure_utc"]
