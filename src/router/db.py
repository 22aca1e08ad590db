"""Engine, sessions and the unit of work: one transaction per request or job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    # Never put bound parameters (message text, token hashes) into error messages or logs.
    kwargs.setdefault("hide_parameters", True)
    if not is_sqlite(url):
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        return create_async_engine(url, **kwargs)

    # SQLite: wait for the write lock instead of failing, and take it at BEGIN so two
    # concurrent transactions never deadlock upgrading a read lock (embedded, one process).
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("timeout", 30)
    engine = create_async_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (savepoints work then)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """Owns the engine; hands out units of work and runs hooks after each commit."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.after_commit: list[Callable[[], None]] = []
        # SQLite has one writer at a time. Queueing units of work here is first-come,
        # first-served; leaving it to SQLite's busy handler makes waiters sleep-poll (p99 in
        # seconds under load). Never open a unit of work inside another one.
        self._lock: asyncio.Lock | None = asyncio.Lock() if is_sqlite(url) else None
        # Extra asyncpg connect() arguments for the LISTEN connection (tests set search_path).
        self.listen_kwargs: dict[str, Any] = {}

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Commit on success, roll back on error; services only ever `flush()`."""
        async with self._serial(), self.sessionmaker() as session:
            try:
                yield session
                if session.info.pop("notify", False) and self.dialect == "postgresql":
                    # Delivered at commit, to every instance's listener (router.notify).
                    await session.execute(text("NOTIFY careline"))
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        for hook in self.after_commit:
            hook()

    @asynccontextmanager
    async def _serial(self) -> AsyncIterator[None]:
        if self._lock is None:
            yield
            return
        async with self._lock:
            yield

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
