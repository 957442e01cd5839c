"""The scheduler only runs ticks: stable ids, no overlap, missed runs coalesced."""

from __future__ import annotations

import asyncio

from bridge.scheduler import _guarded, build_scheduler


def test_jobs_have_stable_ids_and_safe_defaults(bridge):
    scheduler = build_scheduler(bridge)

    async def inspect():
        scheduler.start(paused=True)
        try:
            return {job.id: job for job in scheduler.get_jobs()}
        finally:
            scheduler.shutdown(wait=False)

    jobs = asyncio.run(inspect())
    assert set(jobs) == {"poll:ehr", "dispatch", "writeback"}
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1
        assert job.misfire_grace_time >= 1
    assert jobs["dispatch"].trigger.interval.total_seconds() == 30
    assert jobs["poll:ehr"].trigger.interval.total_seconds() == 300
    # ticks (polls parse whole Bundles) run in worker threads, never on the event loop
    from apscheduler.executors.pool import ThreadPoolExecutor

    assert isinstance(scheduler._lookup_executor("default"), ThreadPoolExecutor)


def test_each_job_drives_the_bridge_tick(bridge, monkeypatch):
    calls = []
    monkeypatch.setattr(bridge, "poll", lambda name: calls.append(("poll", name)))
    monkeypatch.setattr(bridge, "dispatch", lambda: calls.append(("dispatch",)))
    monkeypatch.setattr(bridge, "write_back", lambda: calls.append(("writeback",)))
    scheduler = build_scheduler(bridge)
    for job in scheduler.get_jobs():
        job.func()
    assert sorted(calls) == [("dispatch",), ("poll", "ehr"), ("writeback",)]


def test_a_failing_tick_is_logged_not_raised(caplog):
    def boom():
        raise RuntimeError("EHR down")

    _guarded("poll:ehr", boom)()
    assert "tick poll:ehr failed: RuntimeError: EHR down" in caplog.text
