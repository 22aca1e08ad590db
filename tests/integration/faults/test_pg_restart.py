"""Restart PostgreSQL under load.

While the database is down, `/readyz` is 503 and every webhook answers 503 problem+json with
`Retry-After` (so providers retry): never a 500, never a hang. When it is back, the same
process recovers by itself: ready again, new requests stored, its LISTEN connection and its
outbox worker back at work. Nothing acknowledged is lost: every request that got a 2xx
(before, during or after the outage) is in the database exactly once, and so is every 503'd
request once it has been retried, as a provider would.

One `careline serve` runs on a private cluster, with the app channel pushing replies to a
local receiver and Telegram replies going to a stand-in Bot API. The outage is played twice
on the same process: a fast shutdown (sessions terminated mid-transaction), then an
immediate one (a crash: crash recovery on start).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from models import Message, OutboxItem
from router.workers.listen import APPLICATION_NAME
from tests.support.processes import Instance, TempPostgres, migrate, start_instance, temp_postgres
from tests.support.server import serve
from tests.support.telegram_server import FakeBotAPI

pytestmark = pytest.mark.skipif(
    not TempPostgres.available(), reason="needs the PostgreSQL server binaries (pg_ctl)"
)

ADMIN_TOKEN = "fault-admin-token-0123456789abcdef"
WEBHOOK_SECRET = "fault-webhook-secret-0123456789"
TG_TOKEN = "123456:FAULT-token-abcdefghijklmnop"
TG_SECRET = "fault-tg-secret-0123456789"
SENDERS = 5
REQUEST_TIMEOUT_S = 10.0  # an answer slower than this is a hang, and fails the test
OUTAGE_S = 3.0
READY_WITHIN_S = 30.0
SETTLE_S = 25.0  # bound for the background work (outbox, LISTEN) to catch up
TEST_BOUND_S = 150.0  # a hard stop, far above the usual run (about 40 s)


@dataclass
class Call:
    """One delivery of one webhook request, and what the service answered."""

    kind: str
    path: str
    body: bytes
    headers: dict[str, str]
    key: tuple[str, str]  # (channel, external_id) of the message it must store
    sent_at: float = 0.0
    done_at: float = 0.0
    status: int | None = None
    error: str | None = None
    content_type: str = ""
    retry_after: str | None = None
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def again(self) -> Call:
        """The same request, redelivered (providers resend the identical body)."""
        return Call(self.kind, self.path, self.body, self.headers, self.key)

    def describe(self, t0: float = 0.0) -> str:
        what = self.error or f"{self.status} {json.dumps(self.answer)[:200]}"
        return f"{self.kind} {self.key[1]} sent at {self.sent_at - t0:+.2f}s: {what}"


def _signed(body: bytes) -> str:
    return "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


def make_call(n: int, tag: str) -> Call:
    """The n-th request: app REST, a Telegram update or a signed call log, in turn. Each comes
    from a new contact, so each opens a conversation (and app/Telegram ones queue a reply)."""
    kind = ("app", "telegram", "calls")[n % 3]
    if kind == "app":
        ext = f"{tag}-app-{n}"
        payload = {
            "contact": {"external_id": f"{tag}-user-{n}"},
            "message": {"external_id": ext, "text": "Hola, necesito cambiar mi cita"},
        }
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
        return Call(kind, "/api/v1/inbound", json.dumps(payload).encode(), headers, ("app", ext))
    if kind == "telegram":
        chat = 700_000_000 + zlib.crc32(tag.encode()) % 1000 * 100_000 + n
        update = {
            "update_id": chat,
            "message": {
                "message_id": n + 1,
                "from": {"id": chat, "is_bot": False, "first_name": "Ana", "language_code": "es"},
                "chat": {"id": chat, "first_name": "Ana", "type": "private"},
                "date": 1732610000,
                "text": "Buenas tardes, ¿puedo pagar con tarjeta?",
            },
        }
        headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}
        body = json.dumps(update).encode()
        return Call(kind, "/webhooks/telegram", body, headers, ("telegram", f"{chat}:{n + 1}"))
    call_id = f"{tag}.{n}"
    record = {
        "provider": "asterisk",
        "call_id": call_id,
        "direction": "inbound",
        "from": f"+3461{n:07d}",
        "to": "+34911234567",
        "status": "missed",
        "started_at": "2026-11-26T08:15:00+01:00",
        "duration_s": 0,
    }
    body = json.dumps(record).encode()
    headers = {"X-Careline-Signature": _signed(body), "Content-Type": "application/json"}
    return Call(kind, "/webhooks/calls", body, headers, ("calls", f"asterisk:{call_id}:missed"))


async def deliver(client: httpx.AsyncClient, call: Call) -> Call:
    call.sent_at = time.monotonic()
    try:
        r = await client.post(call.path, content=call.body, headers=call.headers)
    except httpx.HTTPError as exc:  # a reset, a dropped connection or a timeout (a hang)
        call.error = f"{type(exc).__name__}: {exc}"
    else:
        call.status = r.status_code
        call.content_type = r.headers.get("content-type", "")
        call.retry_after = r.headers.get("retry-after")
        with contextlib.suppress(ValueError):
            call.answer = r.json()
    call.done_at = time.monotonic()
    return call


class Load:
    """SENDERS providers posting fresh requests back to back until stopped."""

    def __init__(self, client: httpx.AsyncClient, tag: str) -> None:
        self.client = client
        self.tag = tag
        self.calls: list[Call] = []
        self._n = itertools.count()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _sender(self) -> None:
        while not self._stop.is_set():
            call = make_call(next(self._n), self.tag)
            self.calls.append(call)
            await deliver(self.client, call)
            if not call.ok:
                await asyncio.sleep(0.3)  # providers back off; the 503s are retried at the end

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._sender()) for _ in range(SENDERS)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def stored_since(self, t: float) -> int:
        return sum(c.ok and c.sent_at >= t for c in self.calls)

    async def until_stored(self, n: int, since: float, within: float) -> None:
        deadline = time.monotonic() + within
        while self.stored_since(since) < n:
            assert time.monotonic() < deadline, f"fewer than {n} requests stored in {within} s"
            await asyncio.sleep(0.05)


@dataclass
class Receiver:
    """The app's back-end: records the signed reply callbacks the outbox pushes."""

    bodies: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/callback")
        async def callback(request: Request) -> dict[str, bool]:
            body = await request.body()
            assert request.headers["x-careline-signature"] == _signed(body)
            self.bodies.append(json.loads(body))
            return {"ok": True}

        return app


def tail(inst: Instance) -> str:
    return f"\n--- careline log (tail) ---\n{inst.log()[-5000:]}"


async def wait_ready(client: httpx.AsyncClient, inst: Instance, within: float) -> None:
    """/readyz answers 200 again, in the same process (nobody restarts it)."""
    deadline = time.monotonic() + within
    while True:
        assert inst.proc.poll() is None, f"careline exited{tail(inst)}"
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/readyz")).status_code == 200:
                return
        assert time.monotonic() < deadline, f"not ready {within} s after restart{tail(inst)}"
        await asyncio.sleep(0.2)


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.3)


@contextlib.asynccontextmanager
async def db_conn(url: str) -> AsyncIterator[AsyncConnection]:
    """A connection of the test's own (the service's pool is what is under test)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            yield conn
    finally:
        await engine.dispose()


async def stored_counts(url: str, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    async with db_conn(url) as conn:
        rows = await conn.execute(
            select(Message.channel, Message.external_id, func.count())
            .where(Message.direction == "in", Message.external_id.in_([k[1] for k in keys]))
            .group_by(Message.channel, Message.external_id)
        )
        found = {(r[0], r[1]): int(r[2]) for r in rows}
    return {k: found.get(k, 0) for k in keys}


async def outbox_backlog(url: str) -> list[tuple[str, str, int]]:
    """Replies to app and Telegram customers not delivered yet (both channels answer here)."""
    async with db_conn(url) as conn:
        rows = await conn.execute(
            select(OutboxItem.channel, OutboxItem.status, func.count())
            .where(OutboxItem.channel.in_(("app", "telegram")), OutboxItem.status != "delivered")
            .group_by(OutboxItem.channel, OutboxItem.status)
        )
        return [(r[0], r[1], int(r[2])) for r in rows]


async def listeners(url: str) -> int:
    """Backends of the service's LISTEN connection (router.workers.listen names it)."""
    async with db_conn(url) as conn:
        n = await conn.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
            {"name": APPLICATION_NAME},
        )
    return int(n or 0)


async def outage(
    mode: str, pg: TempPostgres, client: httpx.AsyncClient, inst: Instance, receiver: Receiver
) -> None:
    load = Load(client, tag=mode)
    t0 = time.monotonic()
    load.start()
    try:
        await load.until_stored(10, since=t0, within=30)  # traffic stored before the outage
        await asyncio.to_thread(pg.stop, mode)
        t_down = time.monotonic()
        while time.monotonic() - t_down < OUTAGE_S:
            r = await client.get("/readyz")
            assert r.status_code == 503, f"{mode}: /readyz {r.status_code} with PostgreSQL down"
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.headers.get("retry-after")
            await asyncio.sleep(0.25)
        t_up = time.monotonic()
        await asyncio.to_thread(pg.start)
        await wait_ready(client, inst, READY_WITHIN_S)
        t_ready = time.monotonic()
        await load.until_stored(10, since=t_ready, within=30)  # stored after recovery
    finally:
        await load.stop()

    calls = load.calls
    # Either stored (2xx) or "retry later" (503): never a 500, a 4xx, a reset or a hang.
    bad = [c for c in calls if not c.ok and c.status != 503]
    assert not bad, (
        f"{mode}: answers other than 2xx/503 (PostgreSQL stopped at +{t_down - t0:.2f}s):\n"
        + "\n".join(c.describe(t0) for c in bad[:10])
        + tail(inst)
    )
    for c in calls:
        if c.status == 503:
            assert c.content_type.startswith("application/problem+json"), c.describe(t0)
            assert c.retry_after, f"{mode}: a 503 without Retry-After: {c.describe(t0)}"
            assert c.answer.get("status") == 503, c.describe(t0)
    during = [c for c in calls if c.sent_at >= t_down and c.done_at <= t_up]
    assert len(during) >= SENDERS, f"{mode}: too little load during the outage: {len(during)}"
    answered = [c for c in during if c.status != 503]
    assert not answered, f"{mode}: not a 503 while PostgreSQL was down:\n" + "\n".join(
        c.describe(t0) for c in answered
    )
    failing = [c for c in calls if c.sent_at >= t_ready and not c.ok]
    assert not failing, f"{mode}: failing after recovery:\n" + "\n".join(
        c.describe(t0) for c in failing[:10]
    )

    # The providers redeliver what got 503; now each one is stored.
    retried = await asyncio.gather(*(deliver(client, c.again()) for c in calls if not c.ok))
    failed = [r for r in retried if not r.ok]
    assert not failed, f"{mode}: redeliveries failed:\n" + "\n".join(r.describe(t0) for r in failed)

    # Exactly once: every acknowledged delivery, first or redelivered, is one message row.
    acked = [c for c in [*calls, *retried] if c.ok]
    counts = await stored_counts(pg.url, [c.key for c in acked])
    lost = [c for c in acked if counts[c.key] == 0]
    assert not lost, (
        f"{mode}: {len(lost)} acknowledged messages are not stored "
        f"(PostgreSQL stopped at +{t_down - t0:.2f}s):\n"
        + "\n".join(c.describe(t0) for c in lost[:10])
    )
    twice = [c.key for c in acked if counts[c.key] > 1]
    assert not twice, f"{mode}: stored more than once: {twice[:10]}"

    # The background work recovered by itself: the LISTEN connection is back...
    async def listening() -> bool:
        return await listeners(pg.url) == 1

    await eventually(listening, SETTLE_S, f"{mode}: LISTEN did not reconnect{tail(inst)}")

    # ...a reply queued after the recovery reaches the app's back-end...
    probe = await deliver(client, make_call(0, f"{mode}-probe"))
    assert probe.ok, probe.describe()

    async def probe_replied() -> bool:
        return any(b["conversation_id"] == probe.answer["conversation_id"] for b in receiver.bodies)

    await eventually(probe_replied, SETTLE_S, f"{mode}: no reply after recovery{tail(inst)}")

    # ...and so is every reply queued before and during the outage (none stuck mid-send).
    backlog: list[tuple[str, str, int]] = []

    async def outbox_drained() -> bool:
        nonlocal backlog
        backlog = await outbox_backlog(pg.url)
        return not backlog

    await eventually(outbox_drained, SETTLE_S, f"{mode}: replies stuck: {backlog}{tail(inst)}")
    assert inst.proc.poll() is None


async def test_postgres_restart_under_load(pg_admin_url: str, tmp_path: Path) -> None:
    del pg_admin_url  # the gate only: this test stops a private cluster of its own
    receiver = Receiver()
    tg_api = FakeBotAPI()
    with temp_postgres() as pg:
        await asyncio.to_thread(migrate, pg.url)
        await tg_api.start()
        async with serve(receiver.app()) as receiver_base:
            env = {
                "CARELINE_DATABASE_URL": pg.url,
                "CARELINE_ADMIN_TOKEN": ADMIN_TOKEN,
                "CARELINE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "CARELINE_TELEGRAM_BOT_TOKEN": TG_TOKEN,
                "CARELINE_TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
                "CARELINE_TELEGRAM_API_BASE": tg_api.base,
                "CARELINE_APP_CALLBACK_URL": f"{receiver_base}/callback",
                "CARELINE_EMAIL_STORE_DIR": str(tmp_path / "store"),
                "CARELINE_RATE_LIMIT_API_PER_MIN": "0",
                "CARELINE_RATE_LIMIT_WEBHOOKS_PER_MIN": "0",
                # Short leases and back-off: an item claimed as the database died is retried
                # within the test's bounds.
                "CARELINE_OUTBOX_LEASE_S": "3",
                "CARELINE_OUTBOX_BACKOFF_BASE_S": "0.5",
                "CARELINE_OUTBOX_BACKOFF_MAX_S": "2",
            }
            inst = await start_instance(env, tmp_path)
            try:
                async with (
                    asyncio.timeout(TEST_BOUND_S),
                    httpx.AsyncClient(
                        base_url=inst.base,
                        timeout=REQUEST_TIMEOUT_S,
                        # Under uvicorn's 5 s keep-alive: never reuse a connection the server
                        # is closing as idle (a client-side race that surfaces as a ReadError).
                        limits=httpx.Limits(keepalive_expiry=1.0),
                    ) as client,
                ):
                    for mode in ("fast", "immediate"):
                        await outage(mode, pg, client, inst, receiver)
            finally:
                inst.stop()
                await tg_api.stop()
