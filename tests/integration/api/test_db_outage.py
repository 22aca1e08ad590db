"""A database outage seen by one request: 503 problem+json with Retry-After (webhook senders
retry), never a 500, and never a 2xx for a message that was not committed.

The outage is simulated where the driver reports it, so every error shape PostgreSQL gives
while it shuts down or starts up is covered on both backends. The real thing (a server
stopped under load) is tests/integration/faults/test_pg_restart.py.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Message
from router.runtime import Runtime
from tests.conftest import ADMIN

INBOUND = {"contact": {"external_id": "u1"}, "message": {"external_id": "m1", "text": "hola"}}


def server_going_away() -> DBAPIError:
    """What SQLAlchemy raises when PostgreSQL refuses a connection while it shuts down: a plain
    DBAPIError, neither an OperationalError nor flagged as a disconnect."""
    orig = asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")
    return DBAPIError("SELECT 1", None, orig)


async def stored(rt: Runtime) -> int:
    async with rt.db.session() as s:
        n = await s.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    return int(n or 0)


def assert_retry_later(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"]
    assert r.json()["status"] == 503


async def test_a_server_shutting_down_is_503_not_500(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    def refuse(*_args: Any) -> None:
        raise server_going_away()

    event.listen(rt.db.engine.sync_engine, "before_cursor_execute", refuse)
    try:
        r = await client.post("/api/v1/inbound", json=INBOUND, headers=ADMIN)
    finally:
        event.remove(rt.db.engine.sync_engine, "before_cursor_execute", refuse)
    assert_retry_later(r)
    assert await stored(rt) == 0
    # Once the database answers again, the provider's redelivery is stored.
    r = await client.post("/api/v1/inbound", json=INBOUND, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert await stored(rt) == 1


class CommitFails(AsyncSession):
    """The server goes away between the handler's last statement and COMMIT."""

    async def commit(self) -> None:
        raise server_going_away()


async def test_no_2xx_when_the_commit_fails(client: httpx.AsyncClient, rt: Runtime) -> None:
    working = rt.db.sessionmaker
    rt.db.sessionmaker = async_sessionmaker(
        rt.db.engine, expire_on_commit=False, class_=CommitFails
    )
    try:
        r = await client.post("/api/v1/inbound", json=INBOUND, headers=ADMIN)
    finally:
        rt.db.sessionmaker = working
    assert await stored(rt) == 0
    # A 2xx here would be a message acknowledged and lost: the sender never retries it.
    assert_retry_later(r)


def test_unreachable_and_going_away_count_as_unavailable() -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    from router.db import is_unavailable

    shutdown = asyncpg.exceptions.AdminShutdownError("terminating connection")
    unavailable = [
        server_going_away(),
        DBAPIError("COMMIT", None, shutdown),
        OperationalError("SELECT 1", None, Exception("database is locked")),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.ConnectionDoesNotExistError("closed in the middle of operation"),
    ]
    for exc in unavailable:
        assert is_unavailable(exc), exc
    chained = RuntimeError("wrapper")
    chained.__cause__ = shutdown
    assert is_unavailable(chained)

    syntax = asyncpg.exceptions.PostgresSyntaxError("syntax error")
    unique = asyncpg.exceptions.UniqueViolationError("duplicate key")
    for exc in (
        ProgrammingError("SELEC", None, syntax),
        IntegrityError("INSERT", None, unique),
        FileNotFoundError(2, "No such file"),
        ValueError("bad"),
    ):
        assert not is_unavailable(exc), exc


def test_a_job_failing_in_an_outage_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from router.db import log_job_failure

    log = logging.getLogger("tests.job")
    with caplog.at_level(logging.WARNING, logger="tests.job"):
        log_job_failure(log, "outbox batch", server_going_away())
        log_job_failure(log, "outbox batch", KeyError("bug"))
    outage, bug = caplog.records
    assert (outage.levelname, outage.getMessage(), outage.exc_info) == (
        "WARNING",
        "outbox batch: database unavailable",
        None,
    )
    assert bug.levelname == "ERROR"
    assert bug.exc_info is not None  # a real bug keeps its traceback
