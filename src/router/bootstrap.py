"""Build the runtime from settings and bring the database in line with the policy."""

from __future__ import annotations

from sqlalchemy import select

from channels import build_registry, signing
from channels.email.adapter import EmailChannel
from channels.webchat import WebchatConfig
from models import Queue
from router import flows
from router.db import Database
from router.policy import load_policy
from router.runtime import Runtime
from router.settings import Settings


def build_runtime(settings: Settings) -> Runtime:
    policy = load_policy(settings.policy)
    tg_token = (
        settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else None
    )
    channels = build_registry(
        app_callback_url=settings.app_callback_url,
        webhook_secret=signing.callback_key(settings),
        legacy_secret=signing.legacy_secret(settings),
        telegram_bot_token=tg_token,
        telegram_api_base=settings.telegram_api_base,
        webchat=WebchatConfig.from_settings(settings),
    )
    db = Database(settings.database_url)
    # The email adapter reads thread headers (In-Reply-To, References) from the database.
    if (email := EmailChannel.from_settings(settings, db)) is not None:
        channels["email"] = email
    return Runtime(settings=settings, db=db, policy=policy, channels=channels)


async def sync_queues(rt: Runtime) -> None:
    """Create or update a row per policy queue (queues are declared in the policy file)."""
    async with rt.db.session() as session:
        existing = {q.name: q for q in await session.scalars(select(Queue))}
        for qp in rt.policy.queues:
            row = existing.get(qp.name)
            if row is None:
                session.add(Queue(name=qp.name, title=qp.title, tier=qp.tier, created_at=rt.now()))
            else:
                row.title, row.tier = qp.title, qp.tier
    flows.forget_queues(rt.db.engine)
