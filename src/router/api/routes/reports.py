"""`GET /api/v1/reports/{report}` for supervisors and admins: JSON, or CSV with format=csv."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from router.api.deps import ManagerDep, RuntimeDep, SessionDep
from router.read import reports
from router.repo import audit

api_router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

ReportName = Literal["volume", "response-times", "sla", "satisfaction", "crisis"]


@api_router.get("/{report}")
async def report(
    report: ReportName,
    _p: ManagerDep,
    rt: RuntimeDep,
    session: SessionDep,
    start: datetime | None = Query(
        default=None, alias="from", description="ISO 8601 with a zone; default: `to` - 7 days"
    ),
    end: datetime | None = Query(default=None, alias="to", description="default: now"),
    queue: str | None = Query(default=None, max_length=64),
    channel: str | None = Query(default=None, pattern=r"^(telegram|webchat|email|calls|app)$"),
    format: Literal["json", "csv", "svg"] = Query(default="json"),
) -> Any:
    """- `volume`: new conversations and inbound messages per hour, channel and queue;
    - `response-times`: first-response and resolution p50/p90/p95 per queue;
    - `sla`: met / breached / open targets and compliance per queue, priority and kind;
    - `satisfaction`: ratings 1-5 and their average per queue (conversations resolved);
    - `crisis`: urgent conversations, time to a clinician's first reply, pages sent.

    At most 92 days; `format=csv` answers the rows as CSV, `format=svg` a bar chart of the
    report's main figure (server-rendered, no script)."""
    w = reports.window(start, end, rt.now(), queue=queue, channel=channel)
    body = await reports.run(session, report, w)
    if format == "svg":
        title, points = reports.series(report, body)
        return Response(
            reports.svg_bars(title, points),
            media_type="image/svg+xml",
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )
    if format == "csv":
        rows = body["rows"]
        fields = list(dict.fromkeys(k for r in rows for k in r)) or ["empty"]
        return Response(
            audit.to_csv(rows, fields),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="careline-{report}.csv"'},
        )
    return body
