"""Kill -9 one of two instances in the middle of a mixed-channel load.

Two `careline serve --role all` processes share one PostgreSQL database. Customers write on
every channel (app REST, Telegram, email, generic and Twilio call webhooks, web chat over a
WebSocket) to either instance, round robin. Once 40 % of the planned messages are
acknowledged, one instance gets SIGKILL. A sender whose request fails (connection refused or
reset, 5xx, a socket closed before the ack) retries at the other instance, as real providers
and the widget do; the survivor must de-dup. Then:

- every message that got a 2xx (an ack) is in the database exactly once, and nothing else is;
- every SLA timer and callback deadline that came due fired exactly once;
- every outbox item is delivered and each stand-in saw it at least once. A second copy is
  only allowed for an item the dead instance sent and then died before recording: the
  stand-ins give every instance its own endpoint, so each copy names its sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from channels.signing import hmac_sha256_header
from models import CallbackRequest, Event, Message, OutboxItem, SlaTimer
from router.decide.policy import DEFAULT_POLICY_PATH
from tests.integration.channels.calls.support import twilio_sign
from tests.support.processes import Instance, migrate, scratch_database, start_instance
from tests.support.standins import AppCallbackReceiver, DeliveryLog, SmtpSink
from tests.support.telegram_server import FakeBotAPI

ADMIN_TOKEN = "kill-test-admin-token-0123456789"
WEBHOOK_SECRET = "kill-test-webhook-secret-0123456789"
AUTHSERV = "mx.clinica.example"
TG_SECRET = "kill-test-telegram-secret"
TG_TOKEN = "123456:kill-test-bot-token"
TWILIO_TOKEN = "kill-test-twilio-auth-token"
PUBLIC_URL = "https://careline.example"
EMAIL_FROM = "Clinica Sol <ayuda@clinica.example>"
# Every queue x priority gets the same few seconds, so raising the priority on a breach (the
# policy's action) never moves a deadline, and every timer comes due during or just after
# the load. Nobody answers, so every first_response and resolution timer must breach.
SLA_S = {"first_response": 5, "next_response": 8, "resolution": 10}
SURVIVOR, KILLED = "a", "b"
KILL_AT = 0.4  # share of the planned messages acknowledged before the kill
# (customers, messages each) per driver.
PLAN = {
    "app": (14, 3),
    "telegram": (14, 3),
    "email": (10, 2),
    "calls": (8, 2),
    "twilio": (6, 1),
    "webchat": (6, 3),
}
TEXTS = (
    "Hola, quisiera cambiar mi cita del martes por la tarde, gracias.",
    "Hello, I need to reschedule my appointment for next week please.",
    "Здравствуйте, хочу перенести запись на следующую неделю.",
)
SETTLE_S = 60.0  # bound on waiting for timers and the outbox after the load


def short_sla_policy(path: Path) -> Path:
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    for key, seconds in SLA_S.items():
        text, n = re.subn(rf'^{key} = "\w+"$', f'{key} = "{seconds}s"', text, flags=re.M)
        assert n == 8, f"default policy changed shape: {n} {key} targets"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Cluster:
    """Round robin over the instances, like a load balancer. A sender that cannot reach an
    instance retries at the next one; an instance found dead is taken out of rotation."""

    instances: dict[str, Instance]
    http: httpx.AsyncClient
    dead: set[str] = field(default_factory=set)
    failovers: int = 0
    server_errors: Counter[int] = field(default_factory=Counter)
    _turn: int = 0

    def pick(self) -> tuple[str, Instance]:
        alive = [name for name in sorted(self.instances) if name not in self.dead]
        self._turn += 1
        name = alive[self._turn % len(alive)]
        return name, self.instances[name]

    def failed(self, name: str) -> None:
        self.failovers += 1
        if self.instances[name].proc.poll() is not None:
            self.dead.add(name)

    async def post(
        self, path: str, content: bytes, headers: dict[str, str]
    ) -> tuple[httpx.Response, str]:
        """Until some instance answers 2xx; returns the answer and who gave it. 5xx, 409 and
        429 are retried as providers do; any other answer is a bug in this test's requests."""
        async with asyncio.timeout(60):
            while True:
                name, inst = self.pick()
                try:
                    r = await self.http.post(inst.base + path, content=content, headers=headers)
                except httpx.TransportError:
                    self.failed(name)
                    await asyncio.sleep(0.05)
                    continue
                if r.is_success:
                    return r, name
                assert r.status_code >= 500 or r.status_code in (409, 429), (
                    f"{path} answered {r.status_code}: {r.text}"
                )
                self.server_errors[r.status_code] += 1
                self.failed(name)
                await asyncio.sleep(0.2)


@dataclass
class Load:
    cluster: Cluster
    planned: int
    rng: random.Random
    # (channel, external id) → the customer it belongs to
    acked: dict[tuple[str, str], str] = field(default_factory=dict)
    acked_at_kill: int = -1

    def ack(self, channel: str, external_id: str, customer: str, via: str) -> None:
        assert (channel, external_id) not in self.acked, "a driver sent the same id twice"
        self.acked[(channel, external_id)] = customer
        if self.acked_at_kill < 0 and via == KILLED and len(self.acked) >= self.planned * KILL_AT:
            # Right after an ack from the victim, in the same tick: whatever that instance
            # still does for it after answering (a commit, say) dies with it.
            self.acked_at_kill = len(self.acked)
            self.cluster.instances[KILLED].kill()

    async def pause(self) -> None:
        await asyncio.sleep(self.rng.uniform(0.5, 1.5))

    def text(self, i: int, j: int) -> str:
        return f"{TEXTS[(i + j) % len(TEXTS)]} #{j}"


async def app_customer(load: Load, i: int, n: int) -> None:
    for j in range(n):
        ext = f"app-{i}-{j}"
        body = {
            "contact": {"external_id": f"app-user-{i}", "name": f"App {i}"},
            "message": {"external_id": ext, "text": load.text(i, j)},
        }
        r, via = await load.cluster.post(
            "/api/v1/inbound",
            json.dumps(body).encode(),
            {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        assert r.json()["message_id"] > 0
        load.ack("app", ext, f"app:{i}", via)
        await load.pause()


async def telegram_user(load: Load, i: int, n: int) -> None:
    user = 700_000_000 + i
    for j in range(n):
        update = {
            "update_id": 10_000 * (i + 1) + j,
            "message": {
                "message_id": j + 1,
                "from": {"id": user, "is_bot": False, "first_name": f"Tg {i}"},
                "chat": {"id": user, "type": "private", "first_name": f"Tg {i}"},
                "date": int(time.time()),
                "text": load.text(i, j),
            },
        }
        body = json.dumps(update).encode()
        headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
        # Telegram redelivers an update it got no answer for; every third one arrives twice,
        # at the same time, on both instances.
        copies = 2 if j % 3 == 1 else 1
        answers = await asyncio.gather(
            *(load.cluster.post("/webhooks/telegram", body, headers) for _ in range(copies))
        )
        outcomes = sorted(r.json()["outcome"] for r, _ in answers)
        # "duplicate" alone: the dead instance stored it and died before answering.
        assert outcomes.count("stored") <= 1, outcomes
        assert set(outcomes) <= {"stored", "duplicate"}, outcomes
        load.ack("telegram", f"{user}:{j + 1}", f"telegram:{i}", answers[-1][1])
        await load.pause()


async def email_sender(load: Load, i: int, n: int) -> None:
    for j in range(n):
        mail = EmailMessage()
        mail["From"] = f"Cliente {i} <cliente{i}@correo.example>"
        mail["To"] = "ayuda@clinica.example"
        mail["Subject"] = f"Consulta {i}"
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = f"<kill-{i}-{j}@correo.example>"
        # The provider's verdict: only authenticated mail threads by its sender.
        mail["Authentication-Results"] = f"{AUTHSERV}; dmarc=pass header.from=correo.example"
        mail.set_content(load.text(i, j))
        raw = mail.as_bytes()
        r, via = await load.cluster.post(
            "/webhooks/email",
            raw,
            {
                "Content-Type": "message/rfc822",
                "X-Careline-Signature": hmac_sha256_header(WEBHOOK_SECRET, raw),
            },
        )
        assert r.json()["status"] in ("stored", "duplicate"), r.text
        load.ack("email", f"kill-{i}-{j}@correo.example", f"email:{i}", via)
        await load.pause()


async def pbx_caller(load: Load, i: int, n: int) -> None:
    """Missed calls through the generic signed JSON call log: callback requests."""
    for j in range(n):
        record = {
            "provider": "pbx",
            "call_id": f"kill-{i}-{j}",
            "direction": "inbound",
            "from": f"+3460000{i:04d}",
            "to": "+34911234567",
            "status": "missed",
            "started_at": datetime.now(UTC).isoformat(),
            "duration_s": 0,
        }
        body = json.dumps(record).encode()
        _, via = await load.cluster.post(
            "/webhooks/calls",
            body,
            {
                "Content-Type": "application/json",
                "X-Careline-Signature": hmac_sha256_header(WEBHOOK_SECRET, body),
            },
        )
        load.ack("calls", f"pbx:kill-{i}-{j}:missed", f"calls:{i}", via)
        await load.pause()


async def twilio_caller(load: Load, i: int, n: int) -> None:
    path = "/webhooks/calls/twilio"
    for j in range(n):
        sid = f"CAkill{i:04d}{j:04d}"
        params = {
            "AccountSid": "ACkilltest",
            "CallSid": sid,
            "CallStatus": "no-answer",
            "Direction": "inbound",
            "From": f"+34611{i:06d}",
            "To": "+34911234567",
            "CallDuration": "0",
            "Timestamp": format_datetime(datetime.now(UTC)),
        }
        _, via = await load.cluster.post(
            path,
            urlencode(params).encode(),
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_sign(TWILIO_TOKEN, PUBLIC_URL + path, params),
            },
        )
        load.ack("calls", f"twilio:{sid}:no-answer", f"twilio:{i}", via)
        await load.pause()


async def _ack_of(ws: ClientConnection, client_id: str) -> None:
    async with asyncio.timeout(15):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "ack" and frame.get("client_id") == client_id:
                return
            if frame.get("type") == "error":
                raise AssertionError(f"web chat refused a message: {frame}")


async def webchat_visitor(load: Load, i: int, n: int) -> None:
    """The widget's contract: a message is stored once acked; else resend it (same
    client_id) on a new socket, which may be on the other instance."""
    r, _ = await load.cluster.post("/webchat/sessions", b"{}", {"Content-Type": "application/json"})
    token, visitor = r.json()["token"], r.json()["visitor_id"]
    ws: ClientConnection | None = None
    on = ""
    try:
        for j in range(n):
            client_id = f"m{j}"
            frame = json.dumps({"type": "message", "client_id": client_id, "text": load.text(i, j)})
            async with asyncio.timeout(60):
                while True:
                    if ws is None:
                        on, inst = load.cluster.pick()
                        url = inst.base.replace("http://", "ws://") + f"/webchat/ws?token={token}"
                        try:
                            ws = await connect(url, open_timeout=10)
                        except (OSError, TimeoutError, WebSocketException):
                            load.cluster.failed(on)
                            await asyncio.sleep(0.05)
                            continue
                    try:
                        await ws.send(frame)
                        await _ack_of(ws, client_id)
                        break
                    except (OSError, TimeoutError, WebSocketException):
                        load.cluster.failed(on)
                        with contextlib.suppress(Exception):
                            await ws.close()
                        ws = None
            load.ack("webchat", f"{visitor}:{client_id}", f"webchat:{i}", on)
            await load.pause()
    finally:
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()


DRIVERS = {
    "app": app_customer,
    "telegram": telegram_user,
    "email": email_sender,
    "calls": pbx_caller,
    "twilio": twilio_caller,
    "webchat": webchat_visitor,
}


async def _staggered(load: Load, name: str, i: int, n: int) -> None:
    await asyncio.sleep(load.rng.uniform(0, 2.5))
    await DRIVERS[name](load, i, n)


@contextlib.asynccontextmanager
async def standins(
    secret: str,
) -> AsyncIterator[tuple[dict[str, FakeBotAPI], AppCallbackReceiver, SmtpSink]]:
    bots = {SURVIVOR: FakeBotAPI(), KILLED: FakeBotAPI()}
    app_rx = AppCallbackReceiver(secret)
    smtp = SmtpSink()
    try:
        for bot in bots.values():
            await bot.start()
        await app_rx.start()
        yield bots, app_rx, smtp
    finally:
        smtp.stop()
        await app_rx.stop()
        for bot in bots.values():
            await bot.stop()


async def _count(session: AsyncSession, stmt: Any) -> int:
    return int(await session.scalar(stmt) or 0)


async def settle(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Wait (bounded) until the outbox is drained and every timer and callback deadline has
    fired. Nobody replies in this test, so all of them come due within seconds."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        async with sessions() as s:
            dead = list(await s.scalars(select(OutboxItem).where(OutboxItem.status == "dead")))
            assert not dead, [(d.id, d.channel, d.last_error) for d in dead]
            undelivered = await _count(
                s, select(func.count()).where(OutboxItem.status != "delivered")
            )
            unfired = await _count(
                s, select(func.count()).where(SlaTimer.next_fire_at.is_not(None))
            )
            unbreached = await _count(
                s,
                select(func.count()).where(
                    CallbackRequest.status == "open", CallbackRequest.breached_at.is_(None)
                ),
            )
        if undelivered == unfired == unbreached == 0:
            return
        assert time.monotonic() < deadline, (
            f"not settled after {SETTLE_S} s: {undelivered} outbox items undelivered, "
            f"{unfired} timers and {unbreached} callback deadlines not fired"
        )
        await asyncio.sleep(0.5)


def _records(inst: Instance) -> list[dict[str, Any]]:
    """The instance's JSON log records (uvicorn's few plain lines are skipped)."""
    out = []
    for line in inst.log().splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            if isinstance(rec, dict):
                out.append(rec)
    return out


def _tail(inst: Instance, lines: int = 40) -> str:
    return "\n".join(inst.log().splitlines()[-lines:])


async def test_kill_one_of_two_instances_mid_load(pg_admin_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    policy = short_sla_policy(tmp_path / "policy.toml")
    async with (
        standins(WEBHOOK_SECRET) as (bots, app_rx, smtp),
        scratch_database(pg_admin_url) as db_url,
    ):
        await asyncio.to_thread(migrate, db_url)
        common = {
            "CARELINE_DATABASE_URL": db_url,
            "CARELINE_ADMIN_TOKEN": ADMIN_TOKEN,
            "CARELINE_POLICY": str(policy),
            "CARELINE_PUBLIC_URL": PUBLIC_URL,
            "CARELINE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "CARELINE_TELEGRAM_BOT_TOKEN": TG_TOKEN,
            "CARELINE_TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
            "CARELINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "CARELINE_EMAIL_FROM": EMAIL_FROM,
            "CARELINE_EMAIL_AUTHSERV_IDS": f'["{AUTHSERV}"]',
            "CARELINE_EMAIL_STORE_DIR": str(tmp_path / "attachments"),
            "CARELINE_RATE_LIMIT_API_PER_MIN": "0",
            "CARELINE_RATE_LIMIT_WEBHOOKS_PER_MIN": "0",
            "CARELINE_WEBCHAT_MESSAGES_PER_MINUTE": "600",
            # A dead instance's claims come back within the test's patience.
            "CARELINE_OUTBOX_LEASE_S": "15",
            "CARELINE_OUTBOX_BACKOFF_BASE_S": "0.5",
            "CARELINE_OUTBOX_BACKOFF_MAX_S": "2",
            "CARELINE_WORKER_POLL_S": "0.5",
        }
        # Each instance delivers to its own stand-in endpoint: every copy names its sender.
        envs = {
            via: common
            | {
                "CARELINE_TELEGRAM_API_BASE": bots[via].base,
                "CARELINE_APP_CALLBACK_URL": app_rx.url(via),
                "CARELINE_SMTP_URL": f"smtp://127.0.0.1:{smtp.start(via)}?timeout=10",
            }
            for via in (SURVIVOR, KILLED)
        }
        names = sorted(envs)
        started_instances = await asyncio.gather(
            *(start_instance(envs[n], tmp_path) for n in names), return_exceptions=True
        )
        instances = {
            n: inst
            for n, inst in zip(names, started_instances, strict=True)
            if isinstance(inst, Instance)
        }
        engine = create_async_engine(db_url, poolclass=NullPool)
        try:
            for res in started_instances:
                if isinstance(res, BaseException):
                    raise res
            ready_s = time.monotonic() - started
            await _run(instances, bots, app_rx, smtp, async_sessionmaker(engine), ready_s, started)
        except BaseException:
            for n, inst in instances.items():
                print(f"--- instance {n} log tail ---\n{_tail(inst)}")  # noqa: T201
            raise
        finally:
            for inst in instances.values():
                inst.stop()
            await engine.dispose()


async def _run(
    instances: dict[str, Instance],
    bots: dict[str, FakeBotAPI],
    app_rx: AppCallbackReceiver,
    smtp: SmtpSink,
    sessions: async_sessionmaker[AsyncSession],
    ready_s: float,
    started: float,
) -> None:
    planned = sum(n * k for n, k in PLAN.values())
    async with httpx.AsyncClient(timeout=30) as http:
        cluster = Cluster(instances, http)
        load = Load(cluster, planned, random.Random(20240611))
        load_started = time.monotonic()
        await asyncio.gather(
            *(
                _staggered(load, name, i, per)
                for name, (count, per) in PLAN.items()
                for i in range(count)
            )
        )
        load_s = time.monotonic() - load_started
        # The survivor took everything after the kill and is still healthy.
        assert (await http.get(instances[SURVIVOR].base + "/readyz")).status_code == 200

    assert instances[KILLED].proc.returncode == -9
    assert len(load.acked) == planned
    assert 0 < load.acked_at_kill < planned, "the kill must land in the middle of the load"
    # Round robin sends the first request after the kill to the dead instance.
    assert cluster.failovers >= 1

    settle_started = time.monotonic()
    await settle(sessions)
    settle_s = time.monotonic() - settle_started

    async with sessions() as s:
        # -- every acknowledged message exactly once, and nothing that was not acknowledged
        inbound = (
            await s.execute(
                select(Message.channel, Message.external_id, Message.conversation_id).where(
                    Message.direction == "in"
                )
            )
        ).all()
        stored = Counter((ch, ext) for ch, ext, _ in inbound)
        assert not [k for k, n in stored.items() if n > 1], "a message stored twice"
        assert set(stored) == set(load.acked), (
            f"lost: {sorted(set(load.acked) - set(stored))[:10]}, "
            f"unexpected: {sorted(set(stored) - set(load.acked))[:10]}"
        )
        # Each customer wrote sequentially, so each has one conversation, whichever
        # instance took each message.
        convs_of: dict[str, set[int]] = defaultdict(set)
        for ch, ext, conv_id in inbound:
            convs_of[load.acked[(ch, ext)]].add(conv_id)
        split = {c: ids for c, ids in convs_of.items() if len(ids) > 1}
        assert not split, f"customers split over conversations: {split}"
        conv_ids = {cid for ids in convs_of.values() for cid in ids}

        # -- every due SLA timer fired exactly once
        timers = list(await s.scalars(select(SlaTimer)))
        assert {(t.conversation_id, t.kind) for t in timers} == {
            (c, k) for c in conv_ids for k in ("first_response", "resolution")
        }
        fired: Counter[tuple[str, int, str]] = Counter()
        for ev in await s.scalars(
            select(Event).where(Event.type.in_(("sla.warning", "sla.breached")))
        ):
            assert ev.conversation_id is not None
            fired[(ev.type, ev.conversation_id, str(ev.data.get("kind")))] += 1
        wrong = [
            (t.conversation_id, t.kind, t.state, fired[("sla.breached", t.conversation_id, t.kind)])
            for t in timers
            if t.state != "breached" or fired[("sla.breached", t.conversation_id, t.kind)] != 1
        ]
        assert not wrong, f"timers not breached exactly once (conv, kind, state, n): {wrong}"
        warned_twice = [k for k, n in fired.items() if k[0] == "sla.warning" and n > 1]
        assert not warned_twice, f"warned more than once: {warned_twice}"
        breaches = sum(n for k, n in fired.items() if k[0] == "sla.breached")
        assert breaches == len(timers), "an SLA breach of a timer that does not exist"

        # -- every callback deadline fired exactly once
        callbacks = list(await s.scalars(select(CallbackRequest)))
        assert len(callbacks) == PLAN["calls"][0] + PLAN["twilio"][0]
        cb_fired = Counter(
            int(ev.data["callback_id"])
            for ev in await s.scalars(select(Event).where(Event.type == "callback.breached"))
        )
        assert {cb.id: cb_fired[cb.id] for cb in callbacks} == {cb.id: 1 for cb in callbacks}
        assert all(cb.breached_at is not None for cb in callbacks)

        # -- every outbox item delivered, at least once at its stand-in
        items = (
            await s.execute(
                select(OutboxItem, Message).join(Message, Message.id == OutboxItem.message_id)
            )
        ).all()

    telegram = DeliveryLog()
    for via, bot in bots.items():
        for call in bot.of("sendMessage"):
            telegram.add(f"{call.params['chat_id']}:{html.unescape(call.params['text'])}", via)
    logs = {"app": app_rx.log, "email": smtp.log, "telegram": telegram}
    expected: dict[str, dict[str, OutboxItem]] = defaultdict(dict)
    for item, msg in items:
        if item.channel == "telegram":
            expected["telegram"][f"{msg.channel_meta['recipient']}:{msg.text}"] = item
        elif item.channel in logs:
            expected[item.channel][str(msg.id)] = item
        else:
            assert item.channel == "webchat", item.channel  # shown on the visitor's socket
    assert app_rx.bad_signatures == 0
    per_channel = Counter(item.channel for item, _ in items)
    # One acknowledgement per conversation on a text channel; calls-only contacts get none.
    assert per_channel == {
        "app": PLAN["app"][0],
        "telegram": PLAN["telegram"][0],
        "email": PLAN["email"][0],
        "webchat": PLAN["webchat"][0],
    }
    duplicates: dict[str, int] = {}
    for channel, log in logs.items():
        seen = log.by_key()
        assert set(seen) == set(expected[channel]), (
            f"{channel}: never delivered {sorted(set(expected[channel]) - set(seen))}, "
            f"delivered but not in the outbox {sorted(set(seen) - set(expected[channel]))}"
        )
        dups = log.duplicates()
        for key, copies in dups.items():
            # At-least-once: the dead instance sent it and died before recording it, so its
            # lease ran out and the survivor sent it again. Nothing else may repeat.
            assert sorted(d.via for d in copies) == [SURVIVOR, KILLED], (channel, key, copies)
            assert expected[channel][key].attempts >= 2, (channel, key)
        duplicates[channel] = len(dups)

    # No crash, deadlock or unhandled error on either instance (the victim: until it died).
    errors = [
        f"{name}: {rec.get('logger')}: {rec.get('msg')}: {str(rec.get('exc', ''))[-300:]}"
        for name, inst in instances.items()
        for rec in _records(inst)
        if rec.get("level") in ("ERROR", "CRITICAL")
    ]
    assert not errors, "\n".join(errors)

    attempts = Counter(item.attempts for item, _ in items)
    # A mail client de-dups on Message-ID: do the two copies of a repeated mail share it?
    mail_ids = {k: len(set(smtp.message_ids[k])) for k in smtp.log.duplicates()}
    print(  # noqa: T201
        f"\nkill test: instances ready in {ready_s:.1f} s, load {load_s:.1f} s "
        f"({planned} messages, {load.acked_at_kill} acked before the kill, "
        f"{cluster.failovers} failovers, server errors {dict(cluster.server_errors)}), "
        f"settled in {settle_s:.1f} s, total {time.monotonic() - started:.1f} s\n"
        f"  timers: {len(timers)} breached once each, "
        f"{sum(n for k, n in fired.items() if k[0] == 'sla.warning')} warnings; "
        f"callbacks: {len(callbacks)} breached once each\n"
        f"  outbox: {len(items)} items delivered, attempts {dict(sorted(attempts.items()))}; "
        f"duplicate deliveries at the stand-ins: {duplicates}; "
        f"distinct Message-IDs per repeated mail: {mail_ids}"
    )
