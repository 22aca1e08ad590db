"""Test fixtures. Database tests run on SQLite always and on PostgreSQL when
CARELINE_TEST_DATABASE_URL is set (CI sets it). Each test gets its own database (SQLite file)
or its own schema (PostgreSQL), so tests may commit, run concurrent sessions and workers."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from models import Base
from models.schemas import AgentCreate
from router.api import create_app
from router.bootstrap import sync_queues
from router.db import Database
from router.decide.policy import load_policy
from router.flows import agents
from router.runtime import Runtime
from router.settings import Settings
from tests.support.fakes import FakeChannel, FakeClock

PG_URL = os.environ.get("CARELINE_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
ADMIN_TOKEN = "test-admin-token-0123456789"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}")
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield db
        await db.dispose()
        return
    assert PG_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database(
        PG_URL,
        connect_args={"server_settings": {"search_path": schema}},
        pool_size=25,
        max_overflow=10,
    )
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield db
    finally:
        await db.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_app_channel() -> FakeChannel:
    return FakeChannel("app")


@pytest.fixture
async def rt(database: Database, clock: FakeClock, fake_app_channel: FakeChannel) -> Runtime:
    settings = Settings(
        database_url=database.url,
        admin_token=SecretStr(ADMIN_TOKEN),
        run_workers=False,
        outbox_backoff_base_s=1.0,
        outbox_max_attempts=3,
        # Off for the suite (it fires bursts on purpose); tests/integration/api/test_rate_limit.py
        # turns them on.
        rate_limit_api_per_min=0,
        rate_limit_webhooks_per_min=0,
        _env_file=None,  # type: ignore[call-arg]
    )
    runtime = Runtime(
        settings=settings,
        db=database,
        policy=load_policy(None),
        channels={"app": fake_app_channel},  # type: ignore[dict-item]
        clock=clock,
    )
    await sync_queues(runtime)
    return runtime


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=rt)
    app.state.runtime = rt  # ASGITransport does not run the lifespan
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://careline.test") as c:
        yield c


async def make_agent(rt: Runtime, **kwargs: object) -> tuple[int, str]:
    """Create an agent directly; returns (id, token). Online unless told otherwise."""
    presence = str(kwargs.pop("presence", "online"))
    async with rt.db.session() as session:
        agent, token = await agents.create(session, AgentCreate(**kwargs))  # type: ignore[arg-type]
        if agent.role != "integration":
            agent.presence = presence
        return agent.id, token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN = auth(ADMIN_TOKEN)
