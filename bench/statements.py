"""SQL statements one inbound app message costs, counted on the connection (not timed): a new
conversation, a follow-up, a new conversation with an agent online, and (PostgreSQL) a
follow-up and a new customer's first message inside a batch of eight concurrent ones, per
message. `bench/scale.py` prints these; `tests/integration/router/flows/test_statement_budget.py`
holds the budget.

    python bench/statements.py                 # PostgreSQL, a table
    python bench/statements.py --db sqlite --json
    python bench/statements.py --show          # and each message's statements
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profile_ingest import TOKEN, ingest_app  # noqa: E402

from models.schemas import AgentCreate  # noqa: E402
from router.flows import agents  # noqa: E402

# Transaction control is not work the message asks for (and BEGIN/COMMIT are per batch).
BATCH = 8  # concurrent follow-ups, for the per-message count inside one batch
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


async def count(db: str, pg_url: str, show: bool = False) -> dict[str, int]:
    async with ingest_app(db, pg_url) as (rt, app):
        seen: list[str] = []

        def on_execute(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
            if statement.split(None, 1)[0].upper() not in _CONTROL:
                seen.append(statement)

        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:

            async def send(user: str, msg: str, text: str) -> int:
                seen.clear()
                r = await client.post(
                    "/api/v1/inbound",
                    json={
                        "contact": {"external_id": user},
                        "message": {"external_id": msg, "text": text},
                    },
                    headers=headers,
                )
                r.raise_for_status()
                if show:
                    print(f"-- {msg}: {len(seen)} statements")
                    for s in seen:
                        print("   ", " ".join(s.split())[:160])
                return len(seen)

            async def together(user: str, n: str, text: str, what: str) -> int:
                """BATCH customers `user0…` write message `n` at once: statements per message."""
                seen.clear()
                answers = await asyncio.gather(
                    *(
                        client.post(
                            "/api/v1/inbound",
                            json={
                                "contact": {"external_id": f"{user}{i}"},
                                "message": {"external_id": f"{user}{i}-{n}", "text": text},
                            },
                            headers=headers,
                        )
                        for i in range(BATCH)
                    )
                )
                for r in answers:
                    r.raise_for_status()
                if show:
                    print(f"-- a batch of {BATCH} {what}: {len(seen)} statements")
                    for s in seen:
                        print("   ", " ".join(s.split())[:160])
                return round(len(seen) / BATCH)

            event.listen(rt.db.engine.sync_engine, "before_cursor_execute", on_execute)
            await send("warm-up", "w1", "hola")  # caches (queues) warm, as in service
            new = await send("u1", "m1", "quiero cambiar mi cita del jueves")
            follow_up = await send("u1", "m2", "y otra cosa, la factura")
            async with rt.db.session() as session:
                agent, _token = await agents.create(
                    session, AgentCreate(name="Ana", role="agent_l1", languages=["es"], capacity=5)
                )
                agent.presence = "online"
            online = await send("u2", "m3", "necesito una cita")
            batched = new_batched = 0
            if db == "postgresql":
                # Eight known customers write at once: one group-commit batch, whose
                # look-ups are read ahead once for all (SQLite writes one unit at a time).
                for i in range(BATCH):
                    await send(f"b{i}", f"b{i}-0", "hola, una pregunta")
                batched = await together("b", "1", "y la factura", "follow-ups")
                # Eight new customers at once: their rows go out with the batch's commit.
                new_batched = await together("n", "0", "necesito una cita", "new conversations")
    counts = {"new": new, "follow_up": follow_up, "new_agent_online": online}
    if batched:
        counts["follow_up_in_batch"] = batched
        counts["new_in_batch"] = new_batched
    return counts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    p.add_argument("--json", action="store_true")
    p.add_argument("--show", action="store_true", help="print each message's statements")
    a = p.parse_args()
    counts = asyncio.run(count(a.db, a.pg_url, a.show))
    if a.json:
        print(json.dumps(counts))
    else:
        for case, n in counts.items():
            print(f"{case}: {n} statements")
    return 0


if __name__ == "__main__":
    sys.exit(main())
