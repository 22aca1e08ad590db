"""Group commit: concurrent units of work share one transaction and one commit.

Each inbound delivery used to pay for its own BEGIN, COMMIT (a WAL flush), `pg_notify` and
pool checkout. Under load, the deliveries that arrive while a batch is being written wait for
the next one and are written together: nothing waits for a timer, so an idle service answers
as fast as before, and a busy one amortises the per-transaction cost over the batch.

The contract each caller keeps:
- its answer comes only after *its own* writes are committed (the future resolves after the
  batch's commit);
- a failure in one unit (bad input, a constraint) fails that unit alone: each runs in a
  savepoint (or, with ``isolated=True``, keeps its writes inside a savepoint of its own);
- units with the same ``key`` (one sender) keep their arrival order; a batch is sorted by key,
  so two batches lock conversations in the same order, and a deadlock that happens anyway
  (another instance, an agent's transaction) is retried alone, in a transaction of its own;
- a commit that fails fails (or retries alone) every unit of the batch: nothing is answered
  as stored that was not.

On SQLite there is one writer and the request already holds it (the auth look-up's unit of
work), so the unit runs in the caller's session: there the batch is the single writer's own
queue (`Database._serial`). On PostgreSQL the caller's unit of work is committed before it
waits, so requests never hold pooled connections the batch needs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from router.db import Database, is_unavailable
from router.repo.batch import drop as drop_snapshot

log = logging.getLogger(__name__)

T = TypeVar("T")
Unit = Callable[[AsyncSession], Awaitable[Any]]

# Deadlock detected, serialization failure: the unit did nothing wrong; alone it succeeds.
_RETRY_ALONE_SQLSTATES = frozenset({"40P01", "40001"})


# session.info key: this batch runs its units without savepoints (`without_savepoints`).
_OPTIMISTIC = "careline.group.optimistic"


def without_savepoints(session: AsyncSession) -> bool:
    """Whether a unit may skip its own savepoint: any failure in this batch rolls all of it
    back and the batch is written again with savepoints (so a unit's failure is its own)."""
    return bool(session.info.get(_OPTIMISTIC))


def _retry_alone(error: BaseException) -> bool:
    e: BaseException | None = error
    for _ in range(5):
        if e is None:
            return False
        if getattr(e, "sqlstate", None) in _RETRY_ALONE_SQLSTATES:
            return True
        orig = getattr(e, "orig", None)
        e = orig if isinstance(orig, BaseException) else e.__cause__
    return False


@dataclass(frozen=True)
class ReadAhead:
    """What a unit will look up, read for its whole batch before the units run: `load` gets
    the `item` of every unit of the batch that shares it (one query for all, not one each)."""

    load: Callable[[AsyncSession, list[Any]], Awaitable[None]]
    item: Any


@dataclass
class _Job:
    unit: Unit
    key: str
    isolated: bool
    ahead: ReadAhead | None = None
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit:
    """Batches units of work into shared transactions (PostgreSQL), `runners` at a time."""

    def __init__(self, db: Database, *, max_batch: int = 32, runners: int = 2) -> None:
        self.db = db
        self.max_batch = max_batch
        self.runners = runners
        self._pending: deque[_Job] = deque()
        self._active: set[asyncio.Task[None]] = set()
        # Batch sizes written so far (bench/profile_ingest.py prints them).
        self.batches = 0
        self.units = 0

    async def run(
        self,
        session: AsyncSession,
        unit: Unit,
        *,
        key: str = "",
        isolated: bool = False,
        ahead: ReadAhead | None = None,
    ) -> Any:
        """`await unit(session')` in a shared transaction; its result once that commits.

        `session` is the caller's own unit of work (used as is on SQLite). `isolated`: the
        unit keeps every write inside a savepoint of its own (ingest does), so no outer
        savepoint is needed. `ahead`: what the unit will look up, read for the whole batch.
        """
        if self.db.single_writer:
            return await unit(session)
        if session.in_transaction():
            # The caller's own unit of work (its auth look-up) ends here: a request must hold
            # no pooled connection while it waits, or a full pool would starve the batch.
            await session.commit()
        return await self._enqueue(unit, key, isolated, ahead)

    async def submit(
        self,
        unit: Unit,
        *,
        key: str = "",
        isolated: bool = False,
        ahead: ReadAhead | None = None,
    ) -> Any:
        """Like `run`, for a caller without a unit of work (a socket): on SQLite it gets one."""
        if self.db.single_writer:
            async with self.db.session() as session:
                return await unit(session)
        return await self._enqueue(unit, key, isolated, ahead)

    async def _enqueue(self, unit: Unit, key: str, isolated: bool, ahead: ReadAhead | None) -> Any:
        job = _Job(unit, key, isolated, ahead)
        self._pending.append(job)
        if len(self._active) < self.runners:
            task = asyncio.create_task(self._runner())
            self._active.add(task)
            task.add_done_callback(self._active.discard)
        return await job.future

    async def _write_optimistic(self, batch: list[_Job]) -> bool:
        """Savepoints cost two statements a unit; a batch almost never needs them. Try
        without; whether the batch is answered (written, or failed as unavailable)."""
        done, unavailable = await _optimistic_attempt(self.db, batch)
        if unavailable is not None:
            for job in batch:
                _fail(job, unavailable)
            return True
        if done is None:
            return False
        self.batches += 1
        self.units += len(done)
        for job, result in done:
            if not job.future.done():
                job.future.set_result(result)
        return True

    async def _runner(self) -> None:
        while self._pending:
            batch: list[_Job] = []
            while self._pending and len(batch) < self.max_batch:
                job = self._pending.popleft()
                if not job.future.done():  # a caller that gave up is not written
                    batch.append(job)
            if batch:
                # Stable: one sender's units keep their order; every batch locks in key order.
                batch.sort(key=lambda j: j.key)
                await self._write(batch)

    async def _write(self, batch: list[_Job], *, savepoints: bool = False) -> None:
        if not savepoints and await self._write_optimistic(batch):
            return
        done: list[tuple[_Job, Any]] = []
        alone: list[_Job] = []
        try:
            async with self.db.session() as session:
                await _read_ahead(session, batch)
                for job in batch:
                    try:
                        if job.isolated:
                            result = await job.unit(session)
                        else:
                            async with session.begin_nested():
                                result = await job.unit(session)
                    except Exception as exc:
                        # A rolled-back savepoint may have expired or discarded what was
                        # read ahead: the units after it look up for themselves.
                        drop_snapshot(session)
                        if is_unavailable(exc) or (job.isolated and isinstance(exc, DBAPIError)):
                            # The connection is gone, or a database error outside the unit's
                            # savepoint aborted the whole transaction: nothing of the batch
                            # is written (below: one by one, or all failed).
                            raise
                        if len(batch) > 1 and _retry_alone(exc):
                            alone.append(job)
                        else:
                            _fail(job, exc)
                        continue
                    done.append((job, result))
        except Exception as exc:
            if len(batch) > 1 and not is_unavailable(exc):
                # The commit itself failed (a deadlock on commit, a deferred constraint):
                # which unit caused it is unknown, so each is written again on its own.
                log.warning("group commit failed, retrying one by one", exc_info=exc)
                for job in batch:
                    if not job.future.done():
                        await self._write([job])
                return
            for job in batch:
                _fail(job, exc)
            return
        self.batches += 1
        self.units += len(done)
        for job, result in done:
            if not job.future.done():
                job.future.set_result(result)
        for job in alone:
            await self._write([job])


async def _optimistic_attempt(
    db: Database, batch: list[_Job]
) -> tuple[list[tuple[_Job, Any]] | None, BaseException | None]:
    """Every unit of `batch` in one transaction with no savepoint: (results, None) once
    committed; (None, error) when the database is unavailable; (None, None) when anything
    else failed (nothing of the batch is written; it goes again with savepoints)."""
    done: list[tuple[_Job, Any]] = []
    try:
        async with db.session() as session:
            session.info[_OPTIMISTIC] = True
            await _read_ahead(session, batch)
            for job in batch:
                done.append((job, await job.unit(session)))
    except Exception as exc:
        if is_unavailable(exc):
            return None, exc
        log.debug("optimistic batch failed; writing it again with savepoints", exc_info=exc)
        return None, None
    return done, None


async def _read_ahead(session: AsyncSession, batch: list[_Job]) -> None:
    items: dict[Callable[[AsyncSession, list[Any]], Awaitable[None]], list[Any]] = {}
    for job in batch:
        if job.ahead is not None:
            items.setdefault(job.ahead.load, []).append(job.ahead.item)
    for load, group in items.items():
        await load(session, group)


def _fail(job: _Job, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)
