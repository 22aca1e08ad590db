"""The pool pings a connection only when it sat idle (router.db._ping_when_idle), on a real
PostgreSQL: a dead idle connection is replaced before anyone uses it, a connection used a
moment ago is not pinged at all (its failure is an outage answer, and the pool starts over)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from router import db as dbmod
from router.db import is_unavailable, make_engine
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(PG_URL is None, reason="needs PostgreSQL")


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    assert PG_URL is not None
    eng = make_engine(PG_URL, pool_size=1, max_overflow=0)
    yield eng
    await eng.dispose()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(pid: int) -> None:
    assert PG_URL is not None
    other = make_engine(PG_URL, pool_size=1, max_overflow=0)
    try:
        async with other.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    finally:
        await other.dispose()


async def test_an_idle_connection_that_died_is_replaced_before_use(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE_S", 0.0)  # every checkout counts as idle
    first = await _backend_pid(engine)
    await _terminate(first)
    # The ping finds the dead connection; the pool connects afresh and the query runs.
    assert await _backend_pid(engine) != first


async def test_a_connection_used_a_moment_ago_is_not_pinged(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE_S", 3600.0)
    first = await _backend_pid(engine)
    await _terminate(first)
    # No ping: the dead connection reaches the query, which fails as an outage (a 503)…
    with pytest.raises(exc.DBAPIError) as failed:
        await _backend_pid(engine)
    assert is_unavailable(failed.value)
    # …and the disconnect invalidated the pool, so the next request is served again.
    assert await _backend_pid(engine) != first
