"""Build the runtime from settings and bring the database in line with the policy."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from channels.base import ChannelAdapter, ChannelPlugin
from models import Queue
from router.db import Database, is_sqlite
from router.decide.policy import load_policy
from router.repo.queues import forget_queues
from router.runtime import Runtime
from router.settings import Settings


def load_plugins(settings: Settings) -> Sequence[ChannelPlugin]:
    """The channel plug-ins of `settings.channels` (a module with `PLUGINS`)."""
    module = importlib.import_module(settings.channels)
    plugins: Sequence[ChannelPlugin] = module.PLUGINS
    return plugins


def build_runtime(settings: Settings, plugins: Sequence[ChannelPlugin] | None = None) -> Runtime:
    plugins = load_plugins(settings) if plugins is None else plugins
    policy = load_policy(settings.policy)
    db = Database(
        settings.database_url,
        **(
            {}
            if is_sqlite(settings.database_url)
            else {
                "pool_size": settings.db_pool_size,
                "max_overflow": settings.db_max_overflow,
                "pool_timeout": settings.db_pool_timeout_s,
            }
        ),
    )
    # A channel that is not configured has no adapter: its replies dead-letter.
    channels: dict[str, ChannelAdapter] = {
        p.name: a for p in plugins if (a := p.build(settings, db)) is not None
    }
    hooks = [p.hooks for p in plugins if p.hooks is not None]
    return Runtime(settings=settings, db=db, policy=policy, channels=channels, hooks=hooks)


async def sync_queues(rt: Runtime) -> None:
    """Create or update a row per policy queue (queues are declared in the policy file).

    Instances start together (a deploy, the fault tests): the rows are inserted with ON
    CONFLICT DO NOTHING, so the second instance finds them instead of failing its start-up
    on the unique name."""
    async with rt.db.session() as session:
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        now = rt.now()
        rows = [
            {"name": qp.name, "title": qp.title, "tier": qp.tier, "created_at": now}
            for qp in rt.policy.queues
        ]
        if rows:
            await session.execute(insert(Queue).values(rows).on_conflict_do_nothing())
        existing = {q.name: q for q in await session.scalars(select(Queue))}
        for qp in rt.policy.queues:
            row = existing[qp.name]
            if (row.title, row.tier) != (qp.title, qp.tier):
                row.title, row.tier = qp.title, qp.tier
    forget_queues(rt.db.engine)
