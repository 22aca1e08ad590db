"""A slow or failing outbound channel never slows ingest.

A real `careline serve` runs with its app callback URL and its Telegram Bot API base pointed
at a stand-in on loopback (tests/support/outbound_standin.py) that hangs, answers 500 or
trickles. Every inbound message opens a conversation whose acknowledgement goes into the
outbox, destined for that dead channel.

No durations are asserted (timings live in bench/). The proofs are orderings and states:
a burst of ingests completes while a send the outbox worker is making is still hanging (the
stand-in sees that request open before the burst and still open after it); while it hangs the
test itself can take the locks a transaction spanning the send would hold; failed sends are
in the database with their error and a scheduled retry; and once the stand-in recovers every
item arrives there at least once.

One hanging channel holds only its own sends: the outbox delivers each item as its own task,
so an acknowledgement on another channel goes out while the hanging send is still open (this
test found the worker waiting for its whole batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from channels.app.adapter import AppChannel
from channels.telegram.adapter import make_bot
from models import Event, Message, OutboxItem
from router.settings import Settings
from tests.support.outbound_standin import Call, OutboundStandIn
from tests.support.processes import Instance, scratch_database, start_instance

ADMIN_TOKEN = "slow-outbound-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TG_TOKEN = "123456:SLOW-outbound-token-abcdefghijk"
TG_SECRET = "slow-outbound-tg-secret-0123456789"
TEXT = "Hola, quiero cambiar la hora de mi cita del martes"
N_APP, N_TG = 24, 8  # the burst: app messages, Telegram messages
CONCURRENCY = 8
# Generous bounds on waits for things that take well under a second when healthy; a test that
# hits one fails with what it was waiting for, it never asserts a duration. An ingest request
# gets less than the 30 s a Telegram send may hang, so a request that waits on a hanging send
# fails here rather than slipping through once the send times out.
INGEST_BOUND_S = 20.0


@dataclass
class Stack:
    inst: Instance
    standin: OutboundStandIn
    db: AsyncEngine
    db_url: str
    http: httpx.AsyncClient


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    # One instance per test, and `careline serve` migrates first: no separate migrate step.
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}"
        return
    admin_url = str(request.getfixturevalue("pg_admin_url"))  # skips without PostgreSQL
    async with scratch_database(admin_url) as url:
        yield url


@pytest.fixture
async def stack(db_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    standin = OutboundStandIn()
    await standin.start()
    env = {
        "CARELINE_DATABASE_URL": db_url,
        "CARELINE_ADMIN_TOKEN": ADMIN_TOKEN,
        "CARELINE_WEBHOOK_SECRET": "slow-outbound-webhook-secret",
        "CARELINE_APP_CALLBACK_URL": standin.app_url,
        "CARELINE_TELEGRAM_BOT_TOKEN": TG_TOKEN,
        "CARELINE_TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
        "CARELINE_TELEGRAM_API_BASE": standin.base,
        # Quick retries, never dead-lettered: the tests watch retries, then recovery.
        "CARELINE_OUTBOX_BACKOFF_BASE_S": "0.5",
        "CARELINE_OUTBOX_BACKOFF_MAX_S": "1",
        "CARELINE_OUTBOX_MAX_ATTEMPTS": "1000",
        "CARELINE_RATE_LIMIT_API_PER_MIN": "0",
        "CARELINE_RATE_LIMIT_WEBHOOKS_PER_MIN": "0",
        "CARELINE_EMAIL_STORE_DIR": str(tmp_path / "attachments"),
    }
    db = create_async_engine(db_url, poolclass=NullPool)
    inst: Instance | None = None
    try:
        inst = await start_instance(env, tmp_path)
        async with httpx.AsyncClient(
            base_url=inst.base,
            timeout=INGEST_BOUND_S,
            # Under uvicorn's 5 s keep-alive: never reuse a connection the server is closing.
            limits=httpx.Limits(keepalive_expiry=1.0),
        ) as http:
            yield Stack(inst, standin, db, db_url, http)
    finally:
        # Release whatever the stand-in still holds, so the instance shuts down cleanly; stop
        # it from a thread, the stand-in lives on this loop and must keep answering meanwhile.
        standin.set_mode("app", "ok")
        standin.set_mode("telegram", "ok")
        if inst is not None:
            await asyncio.to_thread(inst.stop)
            print(f"--- instance log tail ---\n{inst.log()[-6000:]}")  # noqa: T201
        await standin.stop()
        await db.dispose()


# -- helpers ---------------------------------------------------------------------------------


async def post_app(s: Stack, n: int) -> httpx.Response:
    body = {
        "contact": {"external_id": f"app-user-{n}", "name": f"Cliente {n}"},
        "message": {"external_id": f"app-msg-{n}", "text": TEXT},
    }
    return await s.http.post("/api/v1/inbound", json=body, headers=ADMIN)


async def post_tg(s: Stack, n: int, text_: str = TEXT) -> httpx.Response:
    chat = 500_000 + n
    person = {"id": chat, "first_name": f"Cliente {n}", "language_code": "es"}
    message: dict[str, object] = {
        "message_id": n,
        "from": {**person, "is_bot": False},
        "chat": {"id": chat, "first_name": person["first_name"], "type": "private"},
        "date": int(time.time()),
        "text": text_,
    }
    if text_.startswith("/"):
        message["entities"] = [{"offset": 0, "length": len(text_), "type": "bot_command"}]
    return await s.http.post(
        "/webhooks/telegram",
        json={"update_id": 800_000 + n, "message": message},
        headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
    )


async def burst(s: Stack) -> None:
    """N_APP app and N_TG Telegram messages, CONCURRENCY at a time: each must be answered
    200 within INGEST_BOUND_S."""
    jobs: list[Callable[[], Awaitable[httpx.Response]]] = []
    jobs += [functools.partial(post_app, s, n) for n in range(N_APP)]
    jobs += [functools.partial(post_tg, s, n) for n in range(1, N_TG + 1)]
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(job: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        async with sem:
            try:
                return await job()
            except httpx.TimeoutException as exc:
                raise AssertionError("ingest got no answer while outbound calls hung") from exc

    try:
        async with asyncio.TaskGroup() as tg:  # the first failure cancels the rest
            tasks = [tg.create_task(one(j)) for j in jobs]
    except* AssertionError as group:
        raise group.exceptions[0] from None
    responses = [t.result() for t in tasks]
    assert [r.status_code for r in responses] == [200] * len(responses), [
        r.text for r in responses if r.status_code != 200
    ]


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], what: str, bound: float = 45.0
) -> None:
    deadline = time.monotonic() + bound
    while True:
        ok = check()
        if not isinstance(ok, bool):
            ok = await ok
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        await asyncio.sleep(0.1)


async def outbox(s: Stack) -> list[OutboxItem]:
    async with async_sessionmaker(s.db)() as session:
        return list(await session.scalars(select(OutboxItem).order_by(OutboxItem.id)))


async def inbound_count(s: Stack) -> dict[str, int]:
    async with s.db.connect() as conn:
        rows = await conn.execute(
            select(Message.channel, func.count())
            .where(Message.direction == "in")
            .group_by(Message.channel)
        )
        return {str(ch): int(n) for ch, n in rows.all()}


def open_call(s: Stack, channel: str, method: str) -> Call | None:
    return next(
        (c for c in s.standin.inflight if c.channel == channel and c.method == method), None
    )


async def assert_no_transaction_spans_the_send(s: Stack, sending: list[int]) -> None:
    """Called while the outbox worker waits on a hanging channel: if it held a transaction
    (or a pooled connection in one) across that wait, the locks below would not be free."""
    if s.db_url.startswith("sqlite"):
        # Every unit of work starts with BEGIN IMMEDIATE: one held across the send would keep
        # the database's write lock for as long as the channel hangs.
        path = s.db_url.split("///", 1)[1]

        def take_write_lock() -> None:
            con = sqlite3.connect(path, timeout=2.0, isolation_level=None)
            try:
                con.execute("BEGIN IMMEDIATE")
                con.execute("ROLLBACK")
            finally:
                con.close()

        try:
            await asyncio.to_thread(take_write_lock)
        except sqlite3.OperationalError as exc:
            raise AssertionError(f"a write transaction spans an outbound send: {exc}") from exc
        return
    async with s.db.connect() as conn:
        await conn.execute(text("SET LOCAL lock_timeout = '2s'"))
        try:
            # The claim's FOR UPDATE row locks, had its transaction stayed open.
            locked = list(
                await conn.scalars(
                    select(OutboxItem.id).where(OutboxItem.id.in_(sending)).with_for_update()
                )
            )
        except DBAPIError as exc:
            raise AssertionError("the claim's transaction spans an outbound send") from exc
        assert sorted(locked) == sorted(sending)
        await conn.rollback()
    # Any other transaction held around `send` (a session, a pooled connection in one) is the
    # same (pid, xact_start) in two looks half a second apart; the workers' own short units
    # of work come and go. One look per transaction: pg_stat_activity is a snapshot in one.
    held = await _old_transactions(s)
    await asyncio.sleep(0.5)
    held &= await _old_transactions(s)
    assert not held, f"{len(held)} transaction(s) stayed open while a send hung"


async def _old_transactions(s: Stack) -> set[tuple[object, ...]]:
    async with s.db.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT pid, xact_start FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND xact_start < clock_timestamp() - interval '1 second'"
            )
        )
        return {tuple(r) for r in rows.all()}


# -- the tests -------------------------------------------------------------------------------


async def test_hanging_channel_never_blocks_ingest(stack: Stack) -> None:
    s = stack
    s.standin.set_mode("app", "hang")
    s.standin.set_mode("telegram", "hang")

    # A witness: one acknowledgement the outbox worker is stuck sending. Telegram's client
    # gives up only after 30 s, far longer than the burst needs on a healthy instance.
    assert (await post_tg(s, 0)).status_code == 200
    await eventually(lambda: open_call(s, "telegram", "sendMessage") is not None, "witness send")
    witness = open_call(s, "telegram", "sendMessage")
    assert witness is not None
    seen_at = time.monotonic()
    [witness_item] = await outbox(s)
    assert witness_item.status == "sending"  # claimed and committed, now awaiting the channel

    await burst(s)

    # The whole burst was answered while the send started before it still hung: ingest did
    # not wait for it (nor for the connections and locks it holds).
    assert witness.outcome == "open", "ingest waited until a hanging outbound send ended"

    await asyncio.sleep(max(0.0, 1.5 - (time.monotonic() - seen_at)))  # see the xact_start check
    await assert_no_transaction_spans_the_send(s, [witness_item.id])
    assert witness.outcome == "open", "the lock check ran after the witness send ended"

    # Everything was persisted: each message once, each acknowledgement queued, none lost.
    assert await inbound_count(s) == {"app": N_APP, "telegram": N_TG + 1}
    items = await outbox(s)
    assert sorted(i.channel for i in items) == ["app"] * N_APP + ["telegram"] * (N_TG + 1)
    assert {i.status for i in items} <= {"pending", "sending"}

    # Telegram now fails fast, freeing the worker; the app callback still hangs and its
    # client must give up on its own (a hanging back-end must not hold the worker forever).
    s.standin.set_mode("telegram", "fail")

    async def app_timed_out() -> bool:
        return any(
            i.channel == "app" and "timeout" in (i.last_error or "").lower()
            for i in await outbox(s)
        )

    await eventually(app_timed_out, "an app send to time out while the back-end hangs")
    await eventually(lambda: bool(s.standin.of("app", outcome="abandoned")), "app client hung up")
    items = await outbox(s)
    assert not [i for i in items if i.status in ("delivered", "dead")]
    timed_out = [i for i in items if "timeout" in (i.last_error or "").lower()]
    assert all(i.attempts >= 1 and i.status in ("pending", "sending") for i in timed_out)
    async with async_sessionmaker(s.db)() as session:
        retries = [
            e.data
            for e in await session.scalars(select(Event).where(Event.type == "message.retrying"))
        ]
    assert any(
        d["channel"] == "app" and "timeout" in d["error"].lower() and d["retry_in_s"] > 0
        for d in retries
    ), retries

    # Recovery: every acknowledgement arrives (at least once), none dead-lettered.
    s.standin.set_mode("app", "ok")
    s.standin.set_mode("telegram", "ok")
    await assert_all_delivered(s)


async def test_failing_channel_never_blocks_ingest_and_retries_until_delivered(
    stack: Stack,
) -> None:
    s = stack
    s.standin.set_mode("app", "fail")
    s.standin.set_mode("telegram", "fail")

    await burst(s)

    assert await inbound_count(s) == {"app": N_APP, "telegram": N_TG}
    n_items = N_APP + N_TG

    # Each item fails, is kept with its error and retried after a back-off: never lost,
    # never dead-lettered while retries remain. (`attempts` counts claims, so the channel's
    # own record says which sends were really made and refused.)
    app_keys = [str(i.message_id) for i in await outbox(s) if i.channel == "app"]
    tg_keys = [str(500_000 + n) for n in range(1, N_TG + 1)]

    def refused_twice() -> bool:
        app = Counter(c.key for c in s.standin.of("app", outcome="fail"))
        tg = Counter(c.key for c in s.standin.of("telegram", outcome="fail"))
        return all(app[k] >= 2 for k in app_keys) and all(tg[k] >= 2 for k in tg_keys)

    async def recorded() -> bool:
        items = await outbox(s)
        return all(i.attempts >= 2 and i.last_error for i in items)

    assert len(app_keys) == N_APP
    await eventually(refused_twice, "every item's send to be refused twice")
    await eventually(recorded, "every item's failures to be recorded")
    items = await outbox(s)
    assert len(items) == n_items
    assert {i.status for i in items} <= {"pending", "sending"}
    assert all("500" in (i.last_error or "") or "5xx" in (i.last_error or "") for i in items)

    # Ingest still answers while the worker keeps failing against the channel.
    assert (await post_app(s, 1000)).status_code == 200

    s.standin.set_mode("app", "ok")
    s.standin.set_mode("telegram", "ok")
    await assert_all_delivered(s)


async def test_hanging_greeting_never_blocks_ingest(stack: Stack) -> None:
    """The Telegram webhook answers `/start` and greets after the commit (a background Bot
    API call, outside the outbox). A greeting that hangs must hold nothing ingest needs. With
    the session dependency request-scoped (FastAPI's default for `yield`) the unit of work
    closed only after the background task, and this failed on both backends (before
    `Depends(get_session, scope="function")`)."""
    s = stack
    s.standin.set_mode("telegram", "hang")
    assert (await post_tg(s, 100, "/start")).status_code == 200
    await eventually(lambda: open_call(s, "telegram", "sendMessage") is not None, "greeting sent")
    greeting = open_call(s, "telegram", "sendMessage")
    assert greeting is not None
    seen_at = time.monotonic()

    await burst(s)

    assert greeting.outcome == "open", "ingest waited until a hanging greeting ended"
    await asyncio.sleep(max(0.0, 1.5 - (time.monotonic() - seen_at)))  # see the xact_start check
    await assert_no_transaction_spans_the_send(s, [])
    assert greeting.outcome == "open", "the lock check ran after the greeting ended"
    assert await inbound_count(s) == {"app": N_APP, "telegram": N_TG}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_hanging_channel_does_not_hold_up_other_channels(stack: Stack) -> None:
    s = stack
    s.standin.set_mode("app", "hang")
    assert (await post_app(s, 1)).status_code == 200
    await eventually(lambda: open_call(s, "app", "callback") is not None, "app send hanging")
    found = open_call(s, "app", "callback")
    assert found is not None
    witness: Call = found

    assert (await post_tg(s, 1)).status_code == 200
    chat = str(500_001)
    await eventually(
        lambda: chat in s.standin.delivered("telegram") or witness.outcome != "open",
        "the Telegram acknowledgement, or the app send to end",
    )
    tg = [c for c in s.standin.of("telegram", outcome="ok") if c.key == chat]
    assert tg, "the Telegram acknowledgement was never delivered"
    assert tg[0].ended is not None
    assert witness.open_at(tg[0].ended), "the Telegram acknowledgement waited for the app callback"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_trickling_back_end_is_cut_off_by_a_deadline(stack: Stack) -> None:
    """A back-end that answers a byte at a time never trips a per-read timeout; the call's
    own deadline must end it, and the item is retried, not stuck in `sending`."""
    s = stack
    s.standin.set_mode("app", "trickle")
    assert (await post_app(s, 1)).status_code == 200
    await eventually(lambda: open_call(s, "app", "callback") is not None, "app send trickling")
    call = open_call(s, "app", "callback")
    assert call is not None

    async def gave_up() -> bool:
        return any("timeout" in (i.last_error or "").lower() for i in await outbox(s))

    await eventually(gave_up, "the callback to hit its deadline", bound=40.0)
    # Cut off mid-answer by the client, not waited out.
    await eventually(lambda: call.outcome == "abandoned", "the client to hang up mid-answer")
    [item] = await outbox(s)
    assert item.status in ("pending", "sending")
    assert item.delivered_at is None

    s.standin.set_mode("app", "ok")
    await assert_all_delivered(s)


async def test_outbound_calls_have_a_deadline_inside_the_outbox_lease() -> None:
    """A send that outlives its lease is re-claimed and sent twice; one with no overall
    deadline can hold its worker forever."""
    lease = Settings.model_fields["outbox_lease_s"].default
    app = AppChannel("http://127.0.0.1:9/callback", None)
    bot = make_bot(TG_TOKEN, "http://127.0.0.1:9")
    try:
        assert 0 < app.deadline_s < lease
        # aiogram turns a number into aiohttp's ClientTimeout(total=...): a whole-call bound.
        assert 0 < bot.session.timeout < lease
    finally:
        await app.aclose()
        await bot.session.close()


async def assert_all_delivered(s: Stack) -> None:
    async def done() -> bool:
        items = await outbox(s)
        return bool(items) and all(i.status == "delivered" for i in items)

    with contextlib.suppress(AssertionError):
        await eventually(done, "every outbox item delivered")
    items = await outbox(s)
    assert [i for i in items if i.status != "delivered"] == []
    app_ids = {str(i.message_id) for i in items if i.channel == "app"}
    assert app_ids <= s.standin.delivered("app"), "an app reply never reached the back-end"
    async with async_sessionmaker(s.db)() as session:
        tg_chats = {
            str(m.channel_meta["recipient"])
            for m in await session.scalars(
                select(Message).where(
                    Message.id.in_([i.message_id for i in items if i.channel == "telegram"])
                )
            )
        }
    assert len(tg_chats) == sum(i.channel == "telegram" for i in items)
    assert tg_chats <= s.standin.delivered("telegram"), "a Telegram reply never reached the API"
