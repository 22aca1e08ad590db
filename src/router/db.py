"""Engine, sessions and the unit of work: one transaction per request or job."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from router.repo.savepoints import follow_savepoints
from router.repo.search import IndexingSession
from router.wake import AFTER_COMMIT_KEY, WAKE_KEY

# A rolled-back savepoint's after-commit calls go with it (its unit stored nothing).
follow_savepoints(AFTER_COMMIT_KEY)

# SQLSTATE classes that mean "the server is not there right now", not "your query is wrong":
# 08 connection exceptions, 57P operator intervention (admin/crash shutdown, cannot connect
# now: shutting down or starting up), 53 insufficient resources (too many connections).
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53")
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
    }
)
# A connect() that neither succeeds nor fails (a black-holed server) must not hang requests.
CONNECT_TIMEOUT_S = 10.0


def is_unavailable(error: BaseException) -> bool:
    """True when `error` means the database is unreachable or going away (an outage: answer
    503 and retry later), false for errors a retry would not fix (bad SQL, constraints).

    SQLAlchemy wraps driver errors inconsistently (a refused connect is a bare OSError, a
    server shutting down a plain DBAPIError), so the whole cause chain is inspected.
    """
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, exc.OperationalError | exc.DisconnectionError | exc.TimeoutError):
            return True  # exc.TimeoutError: the pool had no connection to give in time
        if isinstance(e, ConnectionError | TimeoutError | socket.gaierror):
            return True
        if isinstance(e, OSError) and e.errno in _NETWORK_ERRNOS:
            return True
        sqlstate = getattr(e, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if type(e).__name__ == "InterfaceError" and "connection is closed" in str(e):
            return True  # asyncpg: an operation on a connection the server dropped
        orig = getattr(e, "orig", None)
        e = orig if isinstance(orig, BaseException) else (e.__cause__ or e.__context__)
    return False


def log_job_failure(logger: logging.Logger, job: str, error: BaseException) -> None:
    """A background job's failed round: during a database outage one warning line per poll
    (the loop retries by itself), a full traceback for anything else."""
    if is_unavailable(error):
        logger.warning("%s: database unavailable", job, extra={"error": type(error).__name__})
    else:
        logger.error("%s failed", job, exc_info=error)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    # Never put bound parameters (message text, token hashes) into error messages or logs.
    kwargs.setdefault("hide_parameters", True)
    if not is_sqlite(url):
        # Pre-ping (`_ping_when_idle`): after a database restart, pooled connections are
        # dead; replace them at checkout instead of failing the first request on each.
        ping = kwargs.pop("pool_pre_ping", True)
        kwargs["connect_args"] = {
            "timeout": CONNECT_TIMEOUT_S,
            # asyncpg's per-connection cache of prepared statements (SQLAlchemy's default is
            # 100): the ingest path alone has dozens of distinct statements, and a miss is a
            # PREPARE round trip.
            "prepared_statement_cache_size": 500,
            **kwargs.get("connect_args", {}),
        }
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        engine = create_async_engine(url, **kwargs)
        if ping:
            _ping_when_idle(engine)
        return engine

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


# A connection checked in less than this long ago is handed out without a ping.
PING_AFTER_IDLE_S = 1.0
_CHECKED_IN = "careline.checked_in"


def _ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's `pool_pre_ping`, but only for a connection idle over PING_AFTER_IDLE_S.

    Its asyncpg ping is three round trips (BEGIN, `;`, ROLLBACK) on every checkout, about 5 %
    of the server's CPU under load, to catch a server that went away between two uses. A
    connection used a moment ago is as good as a ping; one that fails anyway raises a
    disconnect error, which invalidates the whole pool (SQLAlchemy does that on any
    disconnect), so the next checkouts connect afresh. This is the bypass window of
    HikariCP's `aliveBypassWindowMs`."""

    @event.listens_for(engine.sync_engine.pool, "connect")
    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()  # (a new connection needs no ping)

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get(_CHECKED_IN)
        if last is not None and time.monotonic() - last < PING_AFTER_IDLE_S:
            return
        try:
            dbapi_conn.ping()
        except Exception as e:
            # The pool invalidates this connection and checks out another (three tries).
            raise exc.DisconnectionError("connection failed its ping") from e


class Database:
    """Owns the engine; hands out units of work and runs hooks after each commit."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        # IndexingSession: each commit indexes what its flushes wrote (router.repo.search).
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=IndexingSession
        )
        # Called after each commit that asked to wake something, with what (`wake_after_commit`).
        self.after_commit: list[Callable[[frozenset[str]], None]] = []
        # SQLite has one writer at a time. Queueing units of work here is first-come,
        # first-served; leaving it to SQLite's busy handler makes waiters sleep-poll (p99 in
        # seconds under load). Never open a unit of work inside another one.
        self._lock: asyncio.Lock | None = asyncio.Lock() if is_sqlite(url) else None
        # Extra asyncpg connect() arguments for the LISTEN connection (tests set search_path).
        self.listen_kwargs: dict[str, Any] = {}

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def single_writer(self) -> bool:
        """SQLite: one unit of work at a time, queued here (`_serial`)."""
        return self._lock is not None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Commit on success, roll back on error; services only ever `flush()`."""
        async with self._serial(), self.sessionmaker() as session:
            try:
                yield session
                topics = frozenset(session.info.pop(WAKE_KEY, ()))
                if topics and self.dialect == "postgresql":
                    # Delivered at commit, to every instance's listener (router.workers.listen).
                    await session.execute(
                        text("SELECT pg_notify('careline', :topics)"),
                        {"topics": ",".join(sorted(topics))},
                    )
                await session.commit()
                done = session.info.pop(AFTER_COMMIT_KEY, ())
            except BaseException:
                # On a dead connection the rollback fails too; never let that replace the
                # error that tells the caller what happened (an outage is a 503, not a 500).
                # The pool discards a connection whose reset fails.
                with contextlib.suppress(Exception):
                    await session.rollback()
                raise
        for fn in done:
            fn()
        if topics:
            for hook in self.after_commit:
                hook(topics)

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
