"""The helpers the integration tests share: put a message in through the app channel, and
count rows. One copy here instead of one per test file."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from models import Message
from router.runtime import Runtime
from tests.conftest import ADMIN


async def app_inbound(
    client: httpx.AsyncClient,
    user: str,
    msg: str,
    text: str,
    *,
    headers: dict[str, str] | None = None,
) -> int:
    """One customer message through `POST /api/v1/inbound`; its conversation id."""
    r = await client.post(
        "/api/v1/inbound",
        json={"contact": {"external_id": user}, "message": {"external_id": msg, "text": text}},
        headers=headers or ADMIN,
    )
    assert r.status_code == 200, r.text
    return int(r.json()["conversation_id"])


async def count_rows(rt: Runtime, model: type, *where: Any) -> int:
    """How many rows of `model` match `where` (SQLAlchemy conditions)."""
    async with rt.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def count_messages(rt: Runtime, *where: Any, **equal: Any) -> int:
    """Stored messages matching `where` and `column=value` pairs."""
    conditions = [*where, *(getattr(Message, k) == v for k, v in equal.items())]
    return await count_rows(rt, Message, *conditions)
