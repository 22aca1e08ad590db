"""How many SQL statements one inbound message costs, counted on the connection (not timed):
a new conversation, a follow-up, and a new conversation with an agent online. The budgets are
today's counts, so the ingest path cannot quietly grow back; lower them when a change cuts
statements (the performance work aims at a handful per message)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from router.runtime import Runtime
from tests.conftest import make_agent
from tests.support.factories import app_inbound
from tests.support.sql import recorded

# Per backend: PostgreSQL takes row locks SQLite does not need; both include the search
# index rows (router.repo.search) written at commit.
BUDGET = {
    "new": {"sqlite": 21, "postgresql": 15},
    "follow_up": {"sqlite": 11, "postgresql": 10},
    "new_agent_online": {"sqlite": 26, "postgresql": 20},
}


@contextmanager
def counting(rt: Runtime) -> Iterator[list[str]]:
    """The statements the block sends, less transaction control (not work a message asks
    for); the list is filled when the block ends."""
    work: list[str] = []
    with recorded(rt) as seen:
        yield work
    work.extend(
        q for q in seen if q.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK")
    )


async def test_the_statement_count_per_message_stays_within_budget(
    client: httpx.AsyncClient, rt: Runtime, backend: str
) -> None:
    await app_inbound(client, "warm-up", "w1", "hola")  # caches (queues) warm, as in service
    with counting(rt) as new:
        await app_inbound(client, "u1", "m1", "quiero cambiar mi cita del jueves")
    with counting(rt) as follow_up:
        await app_inbound(client, "u1", "m2", "y otra cosa, la factura")
    await make_agent(rt, name="Ana", role="agent_l1", languages=["es"], capacity=5)
    with counting(rt) as with_agent:
        await app_inbound(client, "u2", "m3", "necesito una cita")
    counts = {"new": len(new), "follow_up": len(follow_up), "new_agent_online": len(with_agent)}
    for case, n in counts.items():
        assert 0 < n <= BUDGET[case][backend], (case, n, BUDGET[case][backend])


# A follow-up inside a batch of eight (PostgreSQL: group commit), per message: its sender,
# conversation, timers and the agents are read once for the batch (router.repo.batch), and
# a batch that nothing fails needs no savepoints (router.group).
BATCH_BUDGET = 3
# A new customer's first message inside a batch of eight: ids reserved for the batch, so no
# unit flushes on its own; the batch's contacts, identities, conversations, messages, timers
# and outbox rows go out as one multi-row INSERT each at its commit (router.repo.batch).
NEW_BATCH_BUDGET = 6


async def test_a_follow_up_in_a_batch_costs_fewer_statements_than_alone(
    client: httpx.AsyncClient, rt: Runtime, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("batches form on PostgreSQL; SQLite writes one unit at a time")
    users = [f"b{i}" for i in range(8)]
    for u in users:
        await app_inbound(client, u, f"{u}-0", "hola, una pregunta")
    with counting(rt) as seen:
        await asyncio.gather(*(app_inbound(client, u, f"{u}-1", "y la factura") for u in users))
    per_message = len(seen) / len(users)
    assert 0 < per_message <= BATCH_BUDGET, (per_message, seen)


async def test_a_new_conversation_in_a_batch_is_written_with_the_batch(
    client: httpx.AsyncClient, rt: Runtime, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("batches form on PostgreSQL; SQLite writes one unit at a time")
    await app_inbound(client, "warm-up", "w1", "hola")
    users = [f"n{i}" for i in range(8)]
    with counting(rt) as seen:
        await asyncio.gather(*(app_inbound(client, u, f"{u}-0", "una cita") for u in users))
    per_message = len(seen) / len(users)
    assert 0 < per_message <= NEW_BATCH_BUDGET, (per_message, seen)
    # Nothing a unit creates is written row by row: one INSERT per table and batch.
    inserts = [q.split("(", 1)[0] for q in seen if q.startswith("INSERT INTO conversations")]
    assert len(inserts) <= 2, inserts  # (at most two batches form)
