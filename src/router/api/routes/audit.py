"""`GET /api/v1/audit/reads`: who read a patient's messages and record (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel

from models.schemas import MAX_ID, Page
from router.api.deps import SessionDep, require
from router.auth import Principal
from router.flows import privacy
from router.repo import audit
from router.repo.cursor import decode_cursor, encode_cursor

api_router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
AdminDep = Annotated[Principal, Depends(require("admin"))]


class ReadAuditRead(BaseModel):
    id: int
    created_at: datetime
    agent_id: int | None
    role: str
    action: str
    contact_id: int | None
    conversation_id: int | None
    client_ip: str | None
    user_agent: str | None
    detail: str | None


@api_router.get("/reads", response_model=Page[ReadAuditRead])
async def list_reads(
    _p: AdminDep,
    session: SessionDep,
    contact_id: int = Query(ge=1, le=MAX_ID, description="the person (merged contacts too)"),
    cursor: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=100, ge=1, le=500),
) -> Page[ReadAuditRead]:
    """Oldest first. Also for an erased person: the trail survives, without the detail."""
    ids = await privacy.merge_chain(session, contact_id)
    rows = await audit.for_contacts(session, ids, after=decode_cursor(cursor), limit=limit + 1)
    page = rows[:limit]
    return Page(
        items=[ReadAuditRead(**audit.as_dict(r)) for r in page],
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


EXPORT_MAX = 100_000


@api_router.get("/reads/export")
async def export_reads(
    _p: AdminDep,
    session: SessionDep,
    contact_id: int = Query(ge=1, le=MAX_ID),
    format: Literal["csv", "json"] = Query(default="csv"),
) -> Any:
    """The whole trail of one person (at most 100,000 rows), as CSV (default) or JSON."""
    ids = await privacy.merge_chain(session, contact_id)
    rows = [audit.as_dict(r) for r in await audit.for_contacts(session, ids, limit=EXPORT_MAX)]
    if format == "json":
        return {"contact_id": contact_id, "items": rows}
    return Response(
        audit.to_csv(rows, audit.CSV_FIELDS),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="careline-reads-{contact_id}.csv"'},
    )
