"""Alembic migrations match the models on both backends; the CLI works end to end."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from models import Base
from router.migrate import upgrade
from tests.conftest import PG_URL


@pytest.fixture
async def empty_db_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'mig.db'}"
        return
    assert PG_URL is not None
    name = f"careline_mig_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as c:
        await c.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        async with admin.connect() as c:
            await c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def _not_fts(name: str | None, type_: str, _parents: object) -> bool:
    # SQLite's FTS5 search index (router.repo.search) is a virtual table with shadow tables;
    # it is created by DDL next to `search_documents`, not declared as a model.
    return not (type_ == "table" and name is not None and name.startswith("search_fts"))


async def _diff(url: str) -> list[object]:
    from router.db import make_engine

    engine = make_engine(url)
    async with engine.connect() as conn:
        diffs = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"include_name": _not_fts}), Base.metadata
            )
        )
    await engine.dispose()
    return list(diffs)


async def test_migrations_create_exactly_the_models(empty_db_url: str) -> None:
    await asyncio.to_thread(upgrade, empty_db_url)
    assert await _diff(empty_db_url) == []
    await asyncio.to_thread(upgrade, empty_db_url)  # idempotent: already at head


def run_cli(*args: str, url: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARELINE_DATABASE_URL": url, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "router.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_migrate_agent_create_and_demo(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    r = run_cli("migrate", url=url)
    assert r.returncode == 0, r.stderr
    r = run_cli(
        "agent",
        "create",
        "--name",
        "Dr. Ruiz",
        "--role",
        "agent_l2",
        "--languages",
        "es,en",
        url=url,
    )
    assert r.returncode == 0, r.stderr
    assert "Token (shown once): cl_" in r.stdout
    r = run_cli("demo", "--no-serve", url=url)
    assert r.returncode == 0, r.stderr
    assert "Authorization: Bearer cl_" in r.stdout
    assert "/api/v1/conversations" in r.stdout
    r = run_cli("agent", "create", "--name", "x", "--role", "wizard", url=url)
    assert r.returncode == 2
    assert "invalid choice" in r.stderr


def test_serve_refuses_an_invalid_policy_and_names_the_line(tmp_path: Path) -> None:
    from router.decide.policy import DEFAULT_POLICY_PATH

    source = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    bad = source.replace('default_queue = "first_line"', 'default_queue = "third_line"', 1)
    assert bad != source
    line = bad[: bad.index("third_line")].count("\n") + 1
    policy = tmp_path / "policy.toml"
    policy.write_text(bad, encoding="utf-8")
    r = run_cli(
        "serve", url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", CARELINE_POLICY=str(policy)
    )
    assert r.returncode == 2
    assert f"policy.toml:{line}" in r.stderr
    assert "default_queue" in r.stderr
    assert "third_line" in r.stderr
    assert not (tmp_path / "x.db").exists(), "nothing touched before the policy is valid"


def test_cli_agent_create_refuses_a_tier_the_role_disagrees_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from router import cli
    from router.settings import get_settings

    monkeypatch.setenv("CARELINE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    get_settings.cache_clear()
    try:
        code = cli.main(["agent", "create", "--name", "x", "--role", "agent_l1", "--tier", "2"])
    finally:
        get_settings.cache_clear()
    assert code == 2
    assert "cannot have tier 2" in capsys.readouterr().err
    assert not (tmp_path / "c.db").exists(), "refused before touching the database"
