"""Where ingest's CPU goes: N app messages through the real ASGI app in one process (no
network, no client on the cores), on a fresh PostgreSQL schema or SQLite file; prints CPU ms
per message, SQL statements per message and, with --profile, the cProfile top functions.

    python bench/profile_ingest.py --db postgresql --n 400 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
import uuid
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from models import Base
from router.api import create_app
from router.bootstrap import build_runtime, sync_queues
from router.settings import Settings

TEXTS = [
    "Hola, quiero cambiar mi cita del jueves",
    "Здравствуйте, не могу войти в приложение",
    "I was charged twice for my last visit",
    "Me duele la cabeza desde que tomo la nueva medicación",
]
TOKEN = "profile-admin-token-0123456789"


async def run(db: str, n: int, profile: bool, pg_url: str) -> None:
    schema = f"p_{uuid.uuid4().hex[:10]}"
    if db == "postgresql":
        admin = create_async_engine(pg_url)
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
        from router.db import Database

        rt.db = Database(url, connect_args={"server_settings": {"search_path": schema}})
    async with rt.db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await sync_queues(rt)
    app = create_app(runtime=rt)
    app.state.runtime = rt
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
        for i in range(n):
            await one(i)
        if prof:
            prof.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"{db}: {n} messages, {1000 * cpu / n:.2f} ms CPU/msg, {1000 * wall / n:.2f} ms wall/msg,"
        f" {seen[0] / n:.1f} statements/msg"
    )
    if prof:
        stats = pstats.Stats(prof).sort_stats("cumulative")
        stats.print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
    await rt.db.dispose()
    if db == "postgresql":
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    a = p.parse_args()
    asyncio.run(run(a.db, a.n, a.profile, a.pg_url))


if __name__ == "__main__":
    main()
