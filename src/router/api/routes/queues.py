from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from sqlalchemy import select

from models import Queue
from models.schemas import Page, QueueRead
from router.api.deps import AgentDep, RuntimeDep, SessionDep
from router.decide import wait
from router.flows.outbound import estimate_wait
from router.read import conversations as reads

api_router = APIRouter(prefix="/api/v1/queues", tags=["queues"])


@api_router.get("", response_model=Page[QueueRead])
async def list_queues(
    p: AgentDep,
    rt: RuntimeDep,
    session: SessionDep,
    sort: Literal["tier", "name", "-depth"] = Query(
        default="tier", description="tier (then name; default), name, or -depth (busiest first)"
    ),
) -> Page[QueueRead]:
    """Live depth, oldest wait, online agents, expected wait and 24 h SLA outcomes per queue."""
    now = rt.now()
    items = []
    for row in await reads.queue_stats(session, rt, now):
        if int(row["tier"]) > p.max_tier:  # type: ignore[call-overload]
            continue
        q = await session.scalar(select(Queue).where(Queue.name == row["name"]))
        assert q is not None
        est = await estimate_wait(session, rt, q, "normal", now)
        items.append(QueueRead(**row, expected_wait_s=wait.wait_minutes(est) * 60))
    if sort == "name":
        items.sort(key=lambda i: i.name)
    elif sort == "-depth":
        items.sort(key=lambda i: -i.depth)
    return Page(items=items)
