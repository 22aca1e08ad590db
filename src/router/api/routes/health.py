from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from router.api.deps import RuntimeDep
from router.api.problems import problem

api_router = APIRouter(tags=["health"])
# A probe must answer within its own timeout: a database that does not answer is not ready.
READY_TIMEOUT_S = 3.0


@api_router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (no dependencies checked)."""
    return {"status": "ok"}


@api_router.get("/readyz", response_model=None)
async def readyz(rt: RuntimeDep) -> dict[str, str] | Response:
    """Ready to take traffic: the database answers."""
    try:
        await asyncio.wait_for(rt.db.ping(), READY_TIMEOUT_S)
    except Exception:
        return problem(503, "Not ready", "database unreachable")
    return {"status": "ready", "database": rt.db.dialect}


@api_router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
