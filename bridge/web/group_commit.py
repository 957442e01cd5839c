"""Group commit: concurrent webhook requests share one transaction, each answered after it.

Under load, one transaction per request spends most of its time committing (a flush to
disk each), so the requests that arrive while a commit is under way are applied together
in the next one. A request is answered only once its own change is committed, so a 2xx
still means durably recorded. When nothing else is waiting a batch is a single request:
no added delay at low load. If a shared transaction fails, its requests are retried one
by one, so one bad request cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bridge.store.db import session_scope

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Queue items; one worker applies everything queued so far in one transaction.

    ``apply`` gets an open session and the batch and returns one result per item; it
    runs in a worker thread and must not commit.
    """

    def __init__(
        self,
        engine: Engine,
        apply: Callable[[Session, list[Item]], list[Result]],
        *,
        max_batch: int = 500,
    ) -> None:
        self.engine = engine
        self.apply = apply
        self.max_batch = max_batch
        self.pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self.worker: asyncio.Task | None = None
        self.batches = 0  # how many transactions it took (tests read it)
        self.items = 0

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
            items = [item for item, _ in batch]
            try:
                results = await run_in_threadpool(self._commit, items)
            except Exception:
                log.warning("a shared webhook transaction failed; applying its %d one by one",
                            len(items))  # fmt: skip
                for item, future in batch:
                    try:
                        result = (await run_in_threadpool(self._commit, [item]))[0]
                    except Exception as exc:
                        _settle(future, exc=exc)
                    else:
                        _settle(future, result=result)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result=result)

    def _commit(self, items: list[Item]) -> list[Result]:
        with session_scope(self.engine) as session:
            results = self.apply(session, items)
        self.batches += 1
        self.items += len(items)
        return results


def _settle(future: asyncio.Future, *, result=None, exc: BaseException | None = None) -> None:
    if future.done():  # the request went away (client disconnected); its change stands
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
