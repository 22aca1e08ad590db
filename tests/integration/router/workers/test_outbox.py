"""Outbox: retry with back-off then success, retry then dead (visibly), no double sends."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select

from channels.base import DeliveryError
from models import Event, Message, OutboxItem
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker, backoff_delay
from tests.conftest import ADMIN
from tests.support.fakes import FakeChannel, FakeClock
from tests.support.sql import recorded


async def reply(
    client: httpx.AsyncClient,
    rt: Runtime,
    user: str = "u1",
    text: str = "Gracias, le escribimos",
    *,
    drain_first: bool = True,
) -> int:
    """A customer writes, (the acknowledgement goes out,) an agent replies: the reply's id."""
    r = await client.post(
        "/api/v1/inbound",
        json={
            "contact": {"external_id": user},
            "message": {"external_id": f"in-{user}", "text": "Hola, cita"},
        },
        headers=ADMIN,
    )
    cid = r.json()["conversation_id"]
    if drain_first:
        await drain(OutboxWorker(rt))
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"text": text}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def item_for(rt: Runtime, message_id: int) -> OutboxItem:
    async with rt.db.session() as s:
        item = await s.scalar(select(OutboxItem).where(OutboxItem.message_id == message_id))
        assert item is not None
        return item


async def drain(worker: OutboxWorker) -> None:
    while await worker.run_once():
        pass


async def test_retry_then_success(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, fake_app_channel: FakeChannel
) -> None:
    mid = await reply(client, rt)
    await drain(OutboxWorker(rt))
    fake_app_channel.sent.clear()
    mid2 = await reply(client, rt, text="¿Le va bien el viernes?")
    fake_app_channel.script = [DeliveryError("503 from app", retryable=True)]
    worker = OutboxWorker(rt)
    assert await worker.run_once() == 1
    item = await item_for(rt, mid2)
    assert (item.status, item.attempts) == ("pending", 1)
    assert item.last_error == "503 from app"
    assert item.next_attempt_at > clock.now, "backs off before retrying"
    assert await worker.run_once() == 0, "not due yet"
    clock.advance(seconds=rt.settings.outbox_backoff_max_s)
    assert await worker.run_once() == 1
    item = await item_for(rt, mid2)
    assert (item.status, item.attempts) == ("delivered", 2)
    async with rt.db.session() as s:
        msg = await s.get(Message, mid2)
        assert msg is not None
        assert msg.delivery_status == "sent"
        types = list(
            await s.scalars(select(Event.type).where(Event.data["message_id"].as_integer() == mid2))
        )
    assert types.count("message.retrying") == 1
    assert types.count("message.delivered") == 1
    assert [m.message_id for m in fake_app_channel.sent] == [mid2, mid2]
    assert (await item_for(rt, mid)).status == "delivered"


async def test_retry_then_dead_is_visible(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, fake_app_channel: FakeChannel
) -> None:
    mid = await reply(client, rt)
    fake_app_channel.script = [DeliveryError("timeout", retryable=True)] * 10
    worker = OutboxWorker(rt)
    for _ in range(rt.settings.outbox_max_attempts):
        clock.advance(seconds=rt.settings.outbox_backoff_max_s + 1)
        await worker.run_once()
    item = await item_for(rt, mid)
    assert (item.status, item.attempts) == ("dead", rt.settings.outbox_max_attempts)
    msgs = (
        await client.get(f"/api/v1/conversations/{item.conversation_id}/messages", headers=ADMIN)
    ).json()
    dead = next(m for m in msgs["items"] if m["id"] == mid)
    assert dead["delivery_status"] == "failed"
    assert dead["error"] == "timeout"
    async with rt.db.session() as s:
        failed = await s.scalar(select(Event).where(Event.type == "message.failed"))
    assert failed is not None
    assert failed.data["message_id"] == mid


async def test_permanent_error_dies_at_once(
    client: httpx.AsyncClient, rt: Runtime, fake_app_channel: FakeChannel
) -> None:
    mid = await reply(client, rt)
    fake_app_channel.script = [DeliveryError("user blocked the bot", retryable=False)]
    await OutboxWorker(rt).run_once()
    item = await item_for(rt, mid)
    assert (item.status, item.attempts) == ("dead", 1)


async def test_two_workers_never_send_the_same_item_twice(
    client: httpx.AsyncClient, rt: Runtime, fake_app_channel: FakeChannel
) -> None:
    for i in range(30):
        await reply(client, rt, user=f"u{i}", drain_first=False)
    fake_app_channel.delay = 0.005  # sends overlap, so claims race
    w1, w2 = OutboxWorker(rt, batch=5), OutboxWorker(rt, batch=5)

    async def loop(w: OutboxWorker) -> None:
        while await w.run_once():
            pass

    await asyncio.gather(loop(w1), loop(w2))
    sent = [m.message_id for m in fake_app_channel.sent]
    assert len(sent) == len(set(sent)) == 60  # 30 acknowledgements + 30 replies
    async with rt.db.session() as s:
        statuses = set(await s.scalars(select(OutboxItem.status)))
    assert statuses == {"delivered"}


def test_backoff_grows_and_is_capped() -> None:
    lo = [backoff_delay(n, base=2, cap=60, rand=lambda: 0.0) for n in range(1, 9)]
    hi = [backoff_delay(n, base=2, cap=60, rand=lambda: 1.0) for n in range(1, 9)]
    assert lo == [1, 2, 4, 8, 16, 30, 30, 30]
    assert hi == [2, 4, 8, 16, 32, 60, 60, 60]


async def test_unreachable_recipient_is_marked_and_replies_refused(
    client: httpx.AsyncClient, rt: Runtime, fake_app_channel: FakeChannel
) -> None:
    mid = await reply(client, rt)
    fake_app_channel.script = [DeliveryError("bot blocked", retryable=False, unreachable=True)]
    await OutboxWorker(rt).run_once()
    item = await item_for(rt, mid)
    assert item.status == "dead"
    r = await client.post(
        f"/api/v1/conversations/{item.conversation_id}/messages",
        json={"text": "¿hola?"},
        headers=ADMIN,
    )
    assert r.status_code == 409
    assert "unreachable" in r.json()["detail"]


async def test_outcomes_recorded_together_read_their_rows_once(
    client: httpx.AsyncClient, rt: Runtime, fake_app_channel: FakeChannel, backend: str
) -> None:
    """Delivery outcomes that arrive together share a batch (PostgreSQL); their outbox items,
    messages and conversations are read once for it, and each is still recorded in full."""
    for i in range(6):
        r = await client.post(
            "/api/v1/inbound",
            json={
                "contact": {"external_id": f"b{i}"},
                "message": {"external_id": f"b{i}-0", "text": "Hola, una cita"},
            },
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text
    with recorded(rt) as seen:
        await drain(OutboxWorker(rt))
    async with rt.db.session() as s:
        items = list(await s.scalars(select(OutboxItem)))
        delivered = list(
            await s.scalars(select(Event.data).where(Event.type == "message.delivered"))
        )
        statuses = list(
            await s.scalars(select(Message.delivery_status).where(Message.direction == "out"))
        )
    assert len(items) == 6
    assert {i.status for i in items} == {"delivered"}
    assert len(delivered) == 6
    assert statuses == ["sent"] * 6
    one_by_one = [q for q in seen if q.startswith("SELECT outbox.") and "outbox.id = " in q]
    if backend == "postgresql":
        assert len(one_by_one) < 6, one_by_one  # read ahead per batch, not per outcome
