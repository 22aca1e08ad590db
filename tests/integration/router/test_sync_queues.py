"""Instances that start together sync the policy's queues without failing on the unique
queue name (a deploy starts several; the fault tests start two at once)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, func, select, text

from models import Queue
from router.bootstrap import sync_queues
from router.db import Database
from router.runtime import Runtime


async def test_concurrent_start_ups_create_each_queue_once(rt: Runtime) -> None:
    async with rt.db.session() as s:
        await s.execute(delete(Queue))
    # Each "instance" has its own engine, as separate processes would (same schema).
    kwargs: dict[str, Any] = {}
    if rt.db.dialect == "postgresql":
        path = await _search_path(rt)
        kwargs = {"connect_args": {"server_settings": {"search_path": path}}}
    others = [Database(rt.db.url, **kwargs) for _ in range(3)]
    try:
        runtimes = [
            Runtime(settings=rt.settings, db=db, policy=rt.policy, channels={}) for db in others
        ]
        await asyncio.gather(*(sync_queues(r) for r in runtimes))
    finally:
        for db in others:
            await db.dispose()
    async with rt.db.session() as s:
        names = sorted(await s.scalars(select(Queue.name)))
        assert await s.scalar(select(func.count()).select_from(Queue)) == len(rt.policy.queues)
    assert names == sorted(q.name for q in rt.policy.queues)


async def _search_path(rt: Runtime) -> str:
    async with rt.db.session() as s:
        return str(await s.scalar(text("SHOW search_path")))
