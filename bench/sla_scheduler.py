"""SLA scheduler benchmark on PostgreSQL: N open conversations with armed timers.

Seeds a fresh database with N conversations (contact, conversation, first-response and
resolution timers) via COPY, with first-response deadlines spread evenly over the next
`--window` seconds (resolution deadlines far in the future: armed, not firing). Then runs
`--instances` SLA schedulers (as in N service instances; FOR UPDATE SKIP LOCKED) in this
process on the real clock until every due timer has fired, and reports fire lateness
(breach event time − deadline) percentiles and the scheduler CPU time. Not a test.

    python bench/sla_scheduler.py --n 100000 --window 300 --instances 2

`--fire F` lets only F of the N first-response deadlines fall in the window (the rest stay
armed, due in a day): N open conversations with deadlines coming due at F/window per second.
`--json` prints the figures as one JSON object on the last line instead of the table row
(bench/scale.py runs it that way).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import SecretStr

from router.bootstrap import build_runtime, sync_queues
from router.migrate import upgrade
from router.settings import Settings
from router.workers.sla import SlaScheduler


async def seed(dsn: str, n: int, start: datetime, window: float, fire: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        qid = await conn.fetchval("SELECT id FROM queues WHERE name = 'first_line'")
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "contacts",
            records=[(i, f"bench {i}", "{}", now) for i in range(1, n + 1)],
            columns=["id", "name", "attributes", "created_at"],
        )
        await conn.copy_records_to_table(
            "conversations",
            records=[
                (i, i, "app", "open", qid, "normal", "[]", "[]", False, now, now, now)
                for i in range(1, n + 1)
            ],
            columns=[
                "id",
                "contact_id",
                "channel",
                "status",
                "queue_id",
                "priority",
                "tags",
                "routing_reasons",
                "ack_sent",
                "created_at",
                "waiting_since",
                "last_inbound_at",
            ],
        )
        timers = []
        for i in range(1, n + 1):
            if i <= fire:
                due = start + timedelta(seconds=window * (i - 1) / max(1, fire - 1))
                # already warned, so each one fires exactly one event: the breach
                timers.append(
                    (2 * i - 1, i, "first_response", "warned", now, due, None, 900.0, due, now)
                )
            else:  # armed, not due during the run
                due, warn = now + timedelta(days=1), now + timedelta(hours=20)
                timers.append(
                    (2 * i - 1, i, "first_response", "running", now, due, warn, 900.0, warn, now)
                )
            far = now + timedelta(days=2)
            timers.append((2 * i, i, "resolution", "running", now, far, far, 86400.0, far, now))
        await conn.copy_records_to_table(
            "sla_timers",
            records=timers,
            columns=[
                "id",
                "conversation_id",
                "kind",
                "state",
                "started_at",
                "due_at",
                "warn_at",
                "target_s",
                "next_fire_at",
                "created_at",
            ],
        )
        for table in ("contacts", "conversations", "sla_timers"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def run(
    url: str, dsn: str, n: int, window: float, instances: int, lead: float, fire: int | None = None
) -> dict[str, Any]:
    fire = n if fire is None else min(fire, n)
    settings = Settings(
        database_url=url, admin_token=SecretStr("x"), run_workers=False, _env_file=None
    )  # type: ignore[call-arg]
    rt = build_runtime(settings)
    await sync_queues(rt)
    start = datetime.now(UTC) + timedelta(seconds=lead)
    t0 = time.perf_counter()
    await seed(dsn, n, start, window, fire)
    seed_s = time.perf_counter() - t0
    print(
        f"seeded {n} conversations / {2 * n} timers in {seed_s:.1f}s", file=sys.stderr, flush=True
    )
    stop = asyncio.Event()
    cpu0 = time.process_time()
    tasks = [asyncio.create_task(SlaScheduler(rt).run(stop)) for _ in range(instances)]
    conn = await asyncpg.connect(dsn)
    deadline = time.monotonic() + lead + window + 600
    while time.monotonic() < deadline:
        left = await conn.fetchval(
            "SELECT count(*) FROM sla_timers WHERE kind = 'first_response' "
            "AND state <> 'breached' AND due_at <= $1",
            start + timedelta(seconds=window),
        )
        if left == 0:
            break
        await asyncio.sleep(1)
    stop.set()
    rt.sla_wake.wake()
    await asyncio.gather(*tasks)
    cpu = time.process_time() - cpu0
    rows = await conn.fetch(
        "SELECT created_at, (data->>'due_at')::timestamptz AS due FROM events "
        "WHERE type = 'sla.breached'"
    )
    per_timer = await conn.fetchval(
        "SELECT count(*) FROM (SELECT conversation_id FROM events WHERE type = 'sla.breached' "
        "GROUP BY conversation_id HAVING count(*) > 1) d"
    )
    await conn.close()
    await rt.db.dispose()
    late = sorted((r["created_at"] - r["due"]).total_seconds() for r in rows)
    q = statistics.quantiles(late, n=100)
    return {
        "n": n,
        "fire": fire,
        "window_s": window,
        "instances": instances,
        "seed_s": round(seed_s, 1),
        "fired": len(rows),
        "fired_twice": per_timer,
        "lateness_ms": {
            "p50": round(q[49] * 1000, 1),
            "p99": round(q[98] * 1000, 1),
            "max": round(late[-1] * 1000, 1),
        },
        "cpu_s": round(cpu, 1),
        "cpu_ms_per_timer": round(cpu / max(1, len(rows)) * 1e3, 2),
    }


def table_row(r: dict[str, Any]) -> str:
    late = r["lateness_ms"]
    n = f"{r['n']:,}" if r["fire"] == r["n"] else f"{r['n']:,} ({r['fire']:,} due)"
    return (
        f"| {n} | {r['window_s']:.0f} s | {r['instances']} | {r['fired']:,} | "
        f"{r['fired_twice']} | {late['p50']:.0f} ms | {late['p99']:.0f} ms | "
        f"{late['max']:.0f} ms | {r['cpu_s']:.1f} s ({r['cpu_ms_per_timer']:.2f} ms/timer) |"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--window", type=float, default=300.0)
    ap.add_argument("--instances", type=int, default=2)
    ap.add_argument("--lead", type=float, default=5.0, help="seconds before the first deadline")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--fire", type=int, help="deadlines inside the window (default: all N)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    name = f"careline_bench_{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["psql", "-h", args.host, "-U", "postgres", "-qc", f"CREATE DATABASE {name}"], check=True
    )
    url = f"postgresql+asyncpg://postgres@{args.host}/{name}"
    try:
        upgrade(url)
        result = asyncio.run(
            run(
                url,
                f"postgresql://postgres@{args.host}/{name}",
                args.n,
                args.window,
                args.instances,
                args.lead + args.n / 20000,
                args.fire,
            )
        )
    finally:
        subprocess.run(
            [
                "psql",
                "-h",
                args.host,
                "-U",
                "postgres",
                "-qc",
                f"DROP DATABASE {name} WITH (FORCE)",
            ],
            check=False,
        )
    print(json.dumps(result) if args.json else table_row(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
