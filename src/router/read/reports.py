"""Reports for supervisors: volume, response times, SLA compliance, satisfaction, crisis.

Each report is a flat list of rows (the CSV export is those rows) plus a few totals. Costs are
bounded: the window is at most `MAX_DAYS`, aggregates are grouped in SQL, and the percentile
reports read at most `MAX_ROWS` rows (`truncated` says when the window held more).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Conversation, CrisisWatch, Message, Page, Queue, SlaTimer
from router.errors import InvalidInput

MAX_DAYS = 92
MAX_ROWS = 100_000
DEFAULT_DAYS = 7
REPORTS = ("volume", "response-times", "sla", "satisfaction", "crisis")
PERCENTILES = (50, 90, 95)
_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    queue: str | None
    channel: str | None


def window(
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    *,
    queue: str | None,
    channel: str | None,
) -> Window:
    for name, value in (("from", start), ("to", end)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone (e.g. 2026-12-01T00:00:00Z)")
    end = end or now
    start = start or end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise InvalidInput("from must be before to")
    if end - start > timedelta(days=MAX_DAYS):
        raise InvalidInput(f"a report covers at most {MAX_DAYS} days")
    return Window(start, end, queue, channel)


def percentile(sorted_values: Sequence[float], pct: int) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return round(sorted_values[rank - 1], 1)


def _hour(session: AsyncSession, col: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", col), 'YYYY-MM-DD"T"HH24":00:00Z"')
    return func.strftime("%Y-%m-%dT%H:00:00Z", col)


async def _queue_names(session: AsyncSession) -> dict[int, str]:
    return {q.id: q.name for q in await session.scalars(select(Queue))}


def _filter(stmt: _S, w: Window, names: dict[int, str]) -> _S:
    if w.queue is not None:
        ids = [i for i, n in names.items() if n == w.queue]
        if not ids:
            raise InvalidInput(f"unknown queue {w.queue!r}")
        stmt = stmt.where(Conversation.queue_id.in_(ids))
    if w.channel is not None:
        stmt = stmt.where(Conversation.channel == w.channel)
    return stmt


def _qname(names: dict[int, str], qid: int | None) -> str | None:
    return names.get(qid) if qid is not None else None


def _in(col: Any, w: Window) -> ColumnElement[bool]:
    return and_(col >= w.start, col < w.end)


async def volume(session: AsyncSession, w: Window) -> dict[str, Any]:
    """New conversations and inbound messages per hour, channel and queue."""
    names = await _queue_names(session)
    conv_hour = _hour(session, Conversation.created_at)
    convs = _filter(
        select(conv_hour, Conversation.channel, Conversation.queue_id, func.count())
        .where(_in(Conversation.created_at, w))
        .group_by(conv_hour, Conversation.channel, Conversation.queue_id),
        w,
        names,
    )
    msg_hour = _hour(session, Message.created_at)
    msgs = _filter(
        select(msg_hour, Message.channel, Conversation.queue_id, func.count())
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(_in(Message.created_at, w), Message.direction == "in")
        .group_by(msg_hour, Message.channel, Conversation.queue_id),
        w,
        names,
    )
    cells: dict[tuple[str, str, str | None], dict[str, int]] = defaultdict(
        lambda: {"conversations": 0, "inbound_messages": 0}
    )
    for hour, channel, qid, n in (await session.execute(convs)).all():
        cells[(str(hour), channel, names.get(qid))]["conversations"] += int(n)
    for hour, channel, qid, n in (await session.execute(msgs)).all():
        cells[(str(hour), channel, names.get(qid))]["inbound_messages"] += int(n)
    rows: list[dict[str, Any]] = [
        {"hour": h, "channel": c, "queue": q, **v}
        for (h, c, q), v in sorted(
            cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")
        )
    ]
    by_channel: Counter[str] = Counter()
    by_queue: Counter[str] = Counter()
    for r in rows:
        by_channel[str(r["channel"])] += int(r["conversations"])
        by_queue[str(r["queue"])] += int(r["conversations"])
    return {"rows": rows, "by_channel": dict(by_channel), "by_queue": dict(by_queue)}


def _stats(values: list[float]) -> dict[str, Any]:
    values.sort()
    out: dict[str, Any] = {"count": len(values)}
    for pct in PERCENTILES:
        out[f"p{pct}_s"] = percentile(values, pct)
    return out


async def response_times(session: AsyncSession, w: Window) -> dict[str, Any]:
    """First-response and resolution times of the conversations created in the window."""
    names = await _queue_names(session)
    stmt = _filter(
        select(
            Conversation.queue_id,
            Conversation.created_at,
            Conversation.first_response_at,
            Conversation.resolved_at,
        )
        .where(_in(Conversation.created_at, w))
        .order_by(Conversation.id)
        .limit(MAX_ROWS + 1),
        w,
        names,
    )
    rows_ = (await session.execute(stmt)).all()
    first: dict[str, list[float]] = defaultdict(list)
    resolution: dict[str, list[float]] = defaultdict(list)
    for qid, created, fr, res in rows_[:MAX_ROWS]:
        q = names.get(qid, "none") if qid is not None else "none"
        for key in (q, "all"):
            if fr is not None:
                first[key].append((fr - created).total_seconds())
            if res is not None:
                resolution[key].append((res - created).total_seconds())
    rows = []
    for q in sorted(set(first) | set(resolution), key=lambda k: (k == "all", k)):
        for metric, data in (("first_response", first), ("resolution", resolution)):
            rows.append({"queue": q, "metric": metric, **_stats(data.get(q, []))})
    return {"rows": rows, "truncated": len(rows_) > MAX_ROWS}


async def sla(session: AsyncSession, w: Window) -> dict[str, Any]:
    """Met and breached targets per queue, priority and kind, of timers started in the window.
    Met: stopped before its due time; breached: fired, or stopped after it."""
    names = await _queue_names(session)
    late = or_(
        SlaTimer.state == "breached",
        and_(
            SlaTimer.state == "stopped",
            SlaTimer.due_at.is_not(None),
            SlaTimer.due_at < SlaTimer.updated_at,
        ),
    )
    met = and_(
        SlaTimer.state == "stopped",
        SlaTimer.due_at.is_not(None),
        SlaTimer.due_at >= SlaTimer.updated_at,
    )
    stmt = _filter(
        select(
            Conversation.queue_id,
            Conversation.priority,
            SlaTimer.kind,
            func.count().filter(met),
            func.count().filter(late),
            func.count(),
        )
        .join(Conversation, Conversation.id == SlaTimer.conversation_id)
        .where(_in(SlaTimer.started_at, w))
        .group_by(Conversation.queue_id, Conversation.priority, SlaTimer.kind),
        w,
        names,
    )
    rows = []
    for qid, priority, kind, n_met, n_late, n in (await session.execute(stmt)).all():
        decided = int(n_met) + int(n_late)
        rows.append(
            {
                "queue": _qname(names, qid),
                "priority": priority,
                "kind": kind,
                "met": int(n_met),
                "breached": int(n_late),
                "open": int(n) - decided,
                "compliance": round(int(n_met) / decided, 4) if decided else None,
            }
        )
    rows.sort(key=lambda r: (str(r["queue"]), str(r["priority"]), str(r["kind"])))
    return {"rows": rows}


async def satisfaction(session: AsyncSession, w: Window) -> dict[str, Any]:
    """Ratings (1-5) of conversations resolved in the window, per queue."""
    names = await _queue_names(session)
    stmt = _filter(
        select(Conversation.queue_id, Conversation.csat, func.count())
        .where(_in(Conversation.resolved_at, w), Conversation.csat.is_not(None))
        .group_by(Conversation.queue_id, Conversation.csat),
        w,
        names,
    )
    per: dict[str, Counter[int]] = defaultdict(Counter)
    for qid, score, n in (await session.execute(stmt)).all():
        per[_qname(names, qid) or "none"][int(score or 0)] += int(n or 0)
        per["all"][int(score or 0)] += int(n or 0)
    rows = []
    for q in sorted(per, key=lambda k: (k == "all", k)):
        c = per[q]
        total = sum(c.values())
        rows.append(
            {
                "queue": q,
                "ratings": total,
                "average": round(sum(s * n for s, n in c.items()) / total, 2) if total else None,
                **{f"score_{s}": c.get(s, 0) for s in range(1, 6)},
            }
        )
    return {"rows": rows}


async def crisis(session: AsyncSession, w: Window) -> dict[str, Any]:
    """Crisis and urgent medical conversations that arrived in the window: how long until a
    clinician's first reply, how many are still unanswered, and the pages sent."""
    names = await _queue_names(session)
    stmt = _filter(
        select(CrisisWatch.since, CrisisWatch.answered_at, CrisisWatch.state)
        .join(Conversation, Conversation.id == CrisisWatch.conversation_id)
        .where(_in(CrisisWatch.since, w))
        .limit(MAX_ROWS + 1),
        w,
        names,
    )
    watches = (await session.execute(stmt)).all()
    waits = [(a - s).total_seconds() for s, a, _st in watches[:MAX_ROWS] if a is not None]
    states = Counter(st for _s, _a, st in watches[:MAX_ROWS])
    pages_stmt = _filter(
        select(Page.reason, Page.status, func.count())
        .join(Conversation, Conversation.id == Page.conversation_id)
        .where(_in(Page.created_at, w))
        .group_by(Page.reason, Page.status),
        w,
        names,
    )
    pages: list[dict[str, Any]] = [
        {"reason": r, "status": s, "pages": int(n)}
        for r, s, n in (await session.execute(pages_stmt)).all()
    ]
    stats = _stats(waits)
    rows = [
        {
            "urgent_conversations": len(watches[:MAX_ROWS]),
            "answered": len(waits),
            "unanswered": len(watches[:MAX_ROWS]) - len(waits),
            "escalated": states.get("escalated", 0),
            **{f"first_clinician_reply_{k}": v for k, v in stats.items() if k != "count"},
            "pages_sent": sum(p["pages"] for p in pages),
        }
    ]
    return {"rows": rows, "pages": pages, "truncated": len(watches) > MAX_ROWS}


async def run(session: AsyncSession, name: str, w: Window) -> dict[str, Any]:
    fn = {
        "volume": volume,
        "response-times": response_times,
        "sla": sla,
        "satisfaction": satisfaction,
        "crisis": crisis,
    }[name]
    body = await fn(session, w)
    return {
        "report": name,
        "from": w.start.isoformat(),
        "to": w.end.isoformat(),
        "queue": w.queue,
        "channel": w.channel,
        **body,
    }


# --- server-rendered charts --------------------------------------------------------------

CHART_W, CHART_H, BAR_GAP = 720, 320, 4
MAX_BARS = 200


def series(name: str, body: dict[str, Any]) -> tuple[str, list[tuple[str, float]]]:
    """The one figure per report worth a chart, as (title, [(label, value)])."""
    rows: list[dict[str, Any]] = body["rows"]
    if name == "volume":
        per_hour: Counter[str] = Counter()
        for r in rows:
            per_hour[str(r["hour"])] += int(r["conversations"])
        return "New conversations per hour (UTC)", sorted(per_hour.items())
    if name == "response-times":
        return "First response p90 (s) per queue", [
            (str(r["queue"]), float(r["p90_s"] or 0))
            for r in rows
            if r["metric"] == "first_response"
        ]
    if name == "sla":
        return "SLA compliance (%) per queue, priority, kind", [
            (f"{r['queue']} {r['priority']} {r['kind']}", 100 * float(r["compliance"] or 0))
            for r in rows
        ]
    if name == "satisfaction":
        total = next((r for r in rows if r["queue"] == "all"), None)
        return "Ratings (all queues)", [
            (str(s), float(total[f"score_{s}"]) if total else 0.0) for s in range(1, 6)
        ]
    pages: list[dict[str, Any]] = body.get("pages", [])
    return "Pages sent by reason and status", [
        (f"{p['reason']} {p['status']}", float(p["pages"])) for p in pages
    ]


def svg_bars(title: str, points: Sequence[tuple[str, float]]) -> str:
    """A bar chart as SVG text. Labels are escaped; nothing is fetched or scripted."""
    from xml.sax.saxutils import escape

    points = list(points)[:MAX_BARS]
    top = max((v for _l, v in points), default=0.0) or 1.0
    plot_h = CHART_H - 90
    n = max(1, len(points))
    bar_w = max(1.0, (CHART_W - 60) / n - BAR_GAP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}" '
        f'viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        "<style>text{font:11px sans-serif;fill:#333}rect{fill:#3a6ea5}</style>",
        f'<text x="10" y="18" style="font-size:14px">{escape(title)}</text>',
        f'<text x="10" y="36">max {top:g}</text>',
    ]
    if not points:
        parts.append('<text x="10" y="80">no data in this window</text>')
    for i, (label, value) in enumerate(points):
        h = plot_h * value / top
        x = 50 + i * (bar_w + BAR_GAP)
        y = 50 + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {value:g}</title></rect>"
        )
        if n <= 24:
            parts.append(
                f'<text x="{x:.1f}" y="{CHART_H - 25}" '
                f'transform="rotate(30 {x:.1f} {CHART_H - 25})">{escape(label[:24])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
