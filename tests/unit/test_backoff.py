"""Outbox backoff: exponential, spread by jitter, never shorter than Retry-After."""

from __future__ import annotations

import random
from datetime import timedelta

from bridge.store.outbox import backoff


def test_exponential_without_jitter():
    assert [backoff(300, n, jitter=0).total_seconds() for n in (1, 2, 3, 4)] == [
        300,
        600,
        1200,
        2400,
    ]


def test_jitter_spreads_within_its_fraction():
    rng = random.Random(7)
    delays = [backoff(300, 2, jitter=0.2, rand=rng.random).total_seconds() for _ in range(500)]
    assert min(delays) >= 600 and max(delays) < 720
    assert len({round(d) for d in delays}) > 50  # replicas do not retry in lockstep


def test_retry_after_is_a_floor():
    assert backoff(300, 1, jitter=0, retry_after=900) == timedelta(seconds=900)
    assert backoff(300, 3, jitter=0, retry_after=5) == timedelta(seconds=1200)
