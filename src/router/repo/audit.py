"""Read audit: who read a patient's messages or contact record, when and from where.

Recorded by the API's read routes, in the request's own unit of work (a read that fails
records nothing; a 2xx means the audit row is committed). The console uses the same API.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import ReadAudit
from router.auth import Principal

ACTIONS = ("conversation", "conversation.messages", "contact", "contact.export", "search")
ERASED = "[erased]"
CSV_FIELDS = (
    "id",
    "created_at",
    "agent_id",
    "role",
    "action",
    "contact_id",
    "conversation_id",
    "client_ip",
    "user_agent",
    "detail",
)


def client_of(request: Request) -> tuple[str | None, str | None]:
    """The caller's address and user agent (the address the server saw: a proxy in front
    must be trusted by uvicorn's `--forwarded-allow-ips` for it to be the client's)."""
    ip = request.client.host if request.client else None
    ua = request.headers.get("user-agent")
    return ip, (ua[:200] if ua else None)


def record(
    session: AsyncSession,
    request: Request,
    p: Principal,
    action: str,
    *,
    now: datetime,
    contact_id: int | None,
    conversation_id: int | None = None,
    detail: str | None = None,
) -> None:
    ip, ua = client_of(request)
    session.add(
        ReadAudit(
            agent_id=p.agent_id,
            role=p.role,
            action=action,
            contact_id=contact_id,
            conversation_id=conversation_id,
            client_ip=ip,
            user_agent=ua,
            detail=detail[:300] if detail else None,
            created_at=now,
        )
    )


def record_many(
    session: AsyncSession,
    request: Request,
    p: Principal,
    action: str,
    targets: Sequence[tuple[int | None, int | None]],
    *,
    now: datetime,
    detail: str | None = None,
) -> None:
    """One row per distinct (contact, conversation) read, e.g. the hits of a search page."""
    for contact_id, conversation_id in dict.fromkeys(targets):
        record(
            session,
            request,
            p,
            action,
            now=now,
            contact_id=contact_id,
            conversation_id=conversation_id,
            detail=detail,
        )


def as_dict(row: ReadAudit) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": row.created_at.isoformat(),
        "agent_id": row.agent_id,
        "role": row.role,
        "action": row.action,
        "contact_id": row.contact_id,
        "conversation_id": row.conversation_id,
        "client_ip": row.client_ip,
        "user_agent": row.user_agent,
        "detail": row.detail,
    }


async def for_contacts(
    session: AsyncSession,
    contact_ids: Sequence[int],
    *,
    after: int | None = None,
    limit: int | None = None,
) -> list[ReadAudit]:
    stmt = select(ReadAudit).where(ReadAudit.contact_id.in_(list(contact_ids)))
    if after is not None:
        stmt = stmt.where(ReadAudit.id > after)
    stmt = stmt.order_by(ReadAudit.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(await session.scalars(stmt))


def to_csv(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        # A cell starting with = + - @ is a formula to a spreadsheet: neutralise it.
        writer.writerow({k: _cell(r.get(k)) for k in fields})
    return buf.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


async def anonymise(session: AsyncSession, contact_ids: Sequence[int]) -> int:
    """Erasure: the trail stays (who, when, from where, which tombstone), the detail goes
    (a search query may quote the patient's name)."""
    result = await session.execute(
        update(ReadAudit)
        .where(ReadAudit.contact_id.in_(list(contact_ids)), ReadAudit.detail.is_not(None))
        .values(detail=ERASED)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
