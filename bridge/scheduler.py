"""APScheduler runs the ticks; the store holds every piece of state they act on.

Jobs have stable ids (``poll:<connector>``, ``dispatch``, ``writeback``), never overlap
themselves (``max_instances=1``), and coalesce missed runs: a tick always catches up on
everything due, so running it once late is the same as running it several times.
"""

from __future__ import annotations

import logging

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bridge.service import Bridge

log = logging.getLogger(__name__)


def _guarded(name: str, fn):
    def run() -> None:
        try:
            fn()
        except Exception as exc:  # a failed tick is logged and retried on the next one
            log.error("tick %s failed: %s: %s", name, type(exc).__name__, exc)

    run.__name__ = name
    return run


def build_scheduler(bridge: Bridge) -> AsyncIOScheduler:
    sched = bridge.settings.scheduler
    scheduler = AsyncIOScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone="UTC",
    )
    start = bridge.clock.now()

    def add(job_id: str, fn, seconds: float) -> None:
        scheduler.add_job(
            _guarded(job_id, fn),
            IntervalTrigger(seconds=seconds),
            id=job_id,
            name=job_id,
            replace_existing=True,
            next_run_time=start,
            misfire_grace_time=max(1, int(seconds)),
        )

    for conf in bridge.settings.connectors:
        if conf.enabled:
            add(f"poll:{conf.name}", lambda n=conf.name: bridge.poll(n), conf.poll_interval_seconds)
    add("dispatch", bridge.dispatch, sched.dispatch_interval_seconds)
    add("writeback", bridge.write_back, sched.writeback_interval_seconds)
    return scheduler
