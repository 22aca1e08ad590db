"""Where ingest's CPU goes: N app messages through the real ASGI app in one process (no
network, no client on the cores), on a fresh PostgreSQL schema or SQLite file; prints CPU ms
per message, SQL statements per message and, with --profile, the cProfile top functions.

    python bench/profile_ingest.py --db postgresql --n 400 --profile
    python bench/profile_ingest.py --concurrency 16     # group commit batches form
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import pstats
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from models import Base
from router.api import create_app
from router.bootstrap import build_runtime, sync_queues
from router.db import Database
from router.runtime import Runtime
from router.settings import Settings

TEXTS = [
    "Hola, quiero cambiar mi cita del jueves",
    "Здравствуйте, не могу войти в приложение",
    "I was charged twice for my last visit",
    "Me duele la cabeza desde que tomo la nueva medicación",
]
TOKEN = "profile-admin-token-0123456789"


@asynccontextmanager
async def ingest_app(db: str, pg_url: str) -> AsyncIterator[tuple[Runtime, Any]]:
    """A runtime (no workers, no rate limits) and its ASGI app on a fresh PostgreSQL schema or
    SQLite file, dropped afterwards. Also used by bench/statements.py."""
    schema = f"p_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(pg_url)
    if db == "postgresql":
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = pg_url
    else:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/p.db"
    settings = Settings(
        database_url=url,
        admin_token=SecretStr(TOKEN),
        run_workers=False,
        rate_limit_api_per_min=0,
        rate_limit_webhooks_per_min=0,
        _env_file=None,  # type: ignore[call-arg]
    )
    rt = build_runtime(settings)
    if db == "postgresql":
        await rt.db.dispose()
        rt = dataclasses.replace(
            rt, db=Database(url, connect_args={"server_settings": {"search_path": schema}})
        )
    try:
        async with rt.db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await sync_queues(rt)
        app = create_app(runtime=rt)
        app.state.runtime = rt
        yield rt, app
    finally:
        await rt.db.dispose()
        if db == "postgresql":
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def run(db: str, n: int, profile: bool, pg_url: str, concurrency: int) -> None:
    async with ingest_app(db, pg_url) as (rt, app):
        await _measure(rt, app, db, n, profile, concurrency)


async def _measure(rt: Runtime, app: Any, db: str, n: int, profile: bool, concurrency: int) -> None:
    seen: list[int] = [0]

    def count(*_a: Any) -> None:
        seen[0] += 1

    event.listen(rt.db.engine.sync_engine, "before_cursor_execute", count)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:

        async def one(i: int) -> None:
            r = await client.post(
                "/api/v1/inbound",
                json={
                    "contact": {"external_id": f"u{i // 4}"},
                    "message": {"external_id": f"m{i}", "text": TEXTS[i % 4]},
                },
                headers=headers,
            )
            assert r.status_code == 200, r.text

        for i in range(20):  # warm-up: caches, prepared statements
            await one(10_000_000 + i)
        seen[0] = 0
        prof = cProfile.Profile() if profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        todo = iter(range(n))

        async def worker() -> None:
            for i in todo:
                await one(i)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if prof:
            prof.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"{db}: {n} messages, {1000 * cpu / n:.2f} ms CPU/msg, {1000 * wall / n:.2f} ms wall/msg,"
        f" {seen[0] / n:.1f} statements/msg, concurrency {concurrency},"
        f" {_per_commit(rt)} messages per commit"
    )
    if prof:
        stats = pstats.Stats(prof)
        by_package: dict[str, float] = {}
        for (filename, _line, _fn), row in stats.stats.items():  # type: ignore[attr-defined]
            by_package[_package(filename)] = by_package.get(_package(filename), 0.0) + row[2]
        total = sum(by_package.values())
        print("own time by package (cProfile; its overhead inflates every figure):")
        for name, t in sorted(by_package.items(), key=lambda kv: -kv[1])[:20]:
            print(f"  {100 * t / total:5.1f} %  {name}")
        stats.sort_stats("tottime").print_stats(30)


def _per_commit(rt: Any) -> str:
    group = getattr(rt, "group", None)  # (absent on trees before group commit)
    return f"{group.units / max(1, group.batches):.1f}" if group else "1.0"


def _package(filename: str) -> str:
    """A readable owner of a source file: the site-package, or src/<package>/<module>."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/src/" in filename:
        parts = filename.split("/src/", 1)[1].split("/")
        return "/".join(parts[:3]) if parts[0] == "router" else "/".join(parts[:2])
    if filename.startswith("<") or "/lib/python3" not in filename:
        return filename if filename.startswith("<") else "other"
    return "stdlib/" + filename.split("/lib/python3", 1)[1].split("/", 2)[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    a = p.parse_args()
    asyncio.run(run(a.db, a.n, a.profile, a.pg_url, a.concurrency))


if __name__ == "__main__":
    main()
