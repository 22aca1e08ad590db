"""Load generator of the scale benchmark: its own process, so its CPU is not the server's.

`run` drives a mixed inbound load over loopback at one or more base URLs (round-robin):
- app: `POST /api/v1/inbound` with a bearer token;
- telegram: `POST /webhooks/telegram`, a private-chat text `Update` with the secret header;
- email: `POST /webhooks/email`, raw RFC 5322 signed with `X-Careline-Signature`;
- calls: alternately the generic JSON call log (`X-Careline-Signature`) and a Twilio status
  callback (`X-Twilio-Signature`), half of them missed calls (callback request with an SLA);
- webchat: visitors from `POST /webchat/sessions`, each with one WebSocket; a message counts
  once its `ack` frame arrives (the server acks after the commit). A visitor leaves after
  `--per-customer` messages and a new one takes its place.

Every message has a unique external id. Customers (contacts) each write `--per-customer`
messages, spread `--customers-block` messages apart, so a run touches many distinct contacts
and most messages join an open conversation rather than hammering one row.

- `--mode closed`: `--concurrency` workers send back to back for `--warmup` + `--duration`
  seconds. The rate counts 2xx answers and acks completed inside the measured window.
- `--mode open`: arrivals on a fixed schedule at `--rate` per second, whatever the server
  does. Latency runs from each message's *scheduled* time to its answer, so a stalled server
  shows up in the tail instead of silently slowing the client (coordinated omission).

`--target baseline` sends every request to bench/baseline.py's `POST /ingest` instead.
`stubs` serves the Telegram Bot API and an SMTP sink, so Careline's acknowledgements to
Telegram and email customers are really delivered (and cost what they cost).

    python bench/loadgen.py run --base http://127.0.0.1:8000 --mode closed --concurrency 32 \\
        --duration 30 --token "$TOKEN" --json
    python bench/loadgen.py stubs --telegram-port 8081 --smtp-port 8025
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import os
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

CHANNELS = ("app", "telegram", "webchat", "email", "calls")
DEFAULT_MIX = "app=30,telegram=25,webchat=20,email=15,calls=10"
# (language, text): first-line, clinical and one crisis message in es/ru/en, so routing,
# language detection and the crisis path all do their real work.
TEXTS = [
    ("es", "Hola, quiero cambiar mi cita del jueves por la tarde"),
    ("ru", "Здравствуйте, не могу войти в приложение, пишет ошибка"),
    ("en", "I was charged twice for my last visit, can you check?"),
    ("es", "Me duele la cabeza desde que tomo la nueva medicación"),
    ("en", "When will my blood test results be ready?"),
    ("ru", "Можно перенести запись к терапевту на следующую неделю?"),
    ("es", "¿Tienen horario disponible el sábado por la mañana?"),
    ("en", "The app crashes when I open the video consultation"),
    ("ru", "После нового лекарства кружится голова, это нормально?"),
    ("es", "No puedo pagar con tarjeta en la web, me da error"),
    ("en", "Can I get a copy of my invoice for March?"),
    ("ru", "Я больше не хочу жить, всё бессмысленно"),
]
TIMEOUT = aiohttp.ClientTimeout(total=30)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def parse_mix(raw: str) -> list[str]:
    """`app=30,telegram=25,…` → a shuffled cycle of channel names in those shares."""
    weights: dict[str, int] = {}
    for part in raw.split(","):
        name, _, w = part.partition("=")
        name = name.strip()
        if name not in CHANNELS:
            raise SystemExit(f"unknown channel in --mix: {name!r} (one of {', '.join(CHANNELS)})")
        weights[name] = int(w or 1)
    cycle = [name for name, w in weights.items() for _ in range(w)]
    if not cycle:
        raise SystemExit("--mix is empty")
    # Fixed seed: every run sends the same sequence; shuffled so channels interleave.
    random.Random(42).shuffle(cycle)
    return cycle


def pct(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Stats:
    """What happened inside the measured window, per channel."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ok: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # "channel: reason"
    samples: list[str] = field(default_factory=list)

    def record(self, kind: str, error: str | None, latency: float) -> None:
        if error is None:
            self.ok[kind] += 1
            self.latencies[kind].append(latency)
        else:
            self.errors[f"{kind}: {error.split(' | ', 1)[0]}"] += 1
            if len(self.samples) < 5:
                self.samples.append(f"{kind}: {error[:300]}")

    def summary(self, duration: float) -> dict[str, Any]:
        def lat(values: list[float]) -> dict[str, float | None]:
            values = sorted(values)
            return {
                f"p{p}": None if (v := pct(values, p)) is None else round(v * 1000, 2)
                for p in (50, 90, 99)
            } | {"max": round(values[-1] * 1000, 2) if values else None}

        every = [v for vs in self.latencies.values() for v in vs]
        total_ok = sum(self.ok.values())
        return {
            "ok": total_ok,
            "errors": sum(self.errors.values()),
            "rate": round(total_ok / duration, 1),
            "latency_ms": lat(every),
            "per_channel": {
                k: {"ok": self.ok[k], "rate": round(self.ok[k] / duration, 1)}
                | lat(self.latencies[k])
                for k in sorted(self.ok)
            },
            "error_counts": dict(self.errors.most_common()),
            "error_samples": self.samples,
        }


class Visitor:
    """One web chat visitor's socket. Several messages may be in flight on it; each waits
    for its own `ack` (matched by `client_id`). After `quota` messages it is replaced by a
    new visitor in the background while the pool's other sockets carry on."""

    def __init__(self, load: Load, base: str, quota: int) -> None:
        self.load = load
        self.base = base
        self.quota = quota
        self.ready = asyncio.Event()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pending: dict[str, asyncio.Future[str | None]] = {}
        self.sent = 0
        self.replacing = False
        self.closing = False
        self.reader: asyncio.Task[None] | None = None
        self.replacer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        http = self.load.http
        body = {"name": f"Visitante {uuid.uuid4().hex[:6]}", "locale": "es"}
        async with http.post(f"{self.base}/webchat/sessions", json=body) as r:
            if r.status != 201:
                raise RuntimeError(f"webchat session: http {r.status} {(await r.text())[:200]}")
            token = (await r.json())["token"]
        url = self.base.replace("http://", "ws://", 1) + f"/webchat/ws?token={token}"
        self.ws = await http.ws_connect(url, autoping=True, heartbeat=None)
        self.sent = 0
        self.reader = asyncio.create_task(self._read(self.ws))
        self.ready.set()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            kind = frame.get("type")
            if kind in ("ack", "error"):
                fut = self.pending.pop(str(frame.get("client_id")), None)
                if fut is not None and not fut.done():
                    fut.set_result(None if kind == "ack" else f"error frame | {frame}")
        # Closed: whatever was in flight is lost; an unexpected close gets a new visitor.
        reason = f"socket closed {ws.close_code}"
        for fut in self.pending.values():
            if not fut.done():
                fut.set_result(reason)
        self.pending.clear()
        if not self.closing and not self.replacing:
            self._replace()

    def _replace(self) -> None:
        if self.replacing:
            return
        self.replacing = True
        self.ready.clear()
        self.replacer = asyncio.create_task(self._do_replace())

    async def _do_replace(self) -> None:
        try:
            if self.pending:
                await asyncio.wait(list(self.pending.values()), timeout=30)
            if self.ws is not None:
                await self.ws.close()
            if self.reader is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self.reader
            while not self.closing:
                try:
                    await self.open()
                    break
                except (aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
                    self.load.setup_errors[f"webchat reconnect: {type(exc).__name__}"] += 1
                    await asyncio.sleep(0.5)
        finally:
            self.replacing = False

    async def send(self, client_id: str, text: str) -> str | None:
        # Re-check after each wake-up: an earlier sender may have started a swap meanwhile.
        while not self.ready.is_set():
            await self.ready.wait()
        ws = self.ws
        assert ws is not None
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.pending[client_id] = fut
        self.sent += 1
        if self.sent >= self.quota:
            self._replace()  # after this message: its ack is awaited before the swap
        try:
            await ws.send_str(json.dumps({"type": "message", "client_id": client_id, "text": text}))
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            self.pending.pop(client_id, None)
            return f"send failed {type(exc).__name__}"
        try:
            return await asyncio.wait_for(fut, TIMEOUT.total)
        except TimeoutError:
            self.pending.pop(client_id, None)
            return "timeout"

    async def close(self) -> None:
        self.closing = True
        if self.replacer is not None:
            self.replacer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.replacer
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader


class Load:
    """Builds and sends message number i: its channel, base URL, customer and external id."""

    def __init__(self, args: argparse.Namespace, http: aiohttp.ClientSession) -> None:
        self.args = args
        self.http = http
        self.bases: list[str] = [b.rstrip("/") for b in args.base]
        self.cycle = parse_mix(args.mix) if args.target == "careline" else ["baseline"]
        self.seq: Counter[str] = Counter()
        # Unique per run: phases sharing a database never collide (a duplicate would be a
        # cheap no-op and flatter the rate).
        self.run_id = args.run_id or uuid.uuid4().hex[:8]
        self.run_num = int(hashlib.sha256(self.run_id.encode()).hexdigest(), 16) % 90_000
        self.visitors: dict[str, list[Visitor]] = {}
        self.rr: Counter[str] = Counter()
        self.setup_errors: Counter[str] = Counter()
        # Every answer of the run, warm-up included (to check against what was stored).
        self.answered_ok: Counter[str] = Counter()
        self._mac_key = args.webhook_secret.encode()
        self.senders: dict[str, Callable[[str, int], Awaitable[str | None]]] = {
            "app": self.app,
            "telegram": self.telegram,
            "email": self.email,
            "calls": self.calls,
            "webchat": self.webchat,
            "baseline": self.baseline,
        }

    async def prepare(self) -> None:
        if "webchat" not in self.cycle:
            return
        for base in self.bases:
            pool = [Visitor(self, base, self.args.per_customer) for _ in range(self.args.sockets)]
            await asyncio.gather(*(v.open() for v in pool))
            self.visitors[base] = pool

    async def close(self) -> None:
        for pool in self.visitors.values():
            await asyncio.gather(*(v.close() for v in pool))

    def customer(self, k: int) -> int:
        """Message k of a channel → its customer: each writes `per_customer` messages,
        `customers_block` messages apart."""
        block = self.args.customers_block
        return (k // (block * self.args.per_customer)) * block + k % block

    async def send(self, i: int) -> tuple[str, str | None]:
        kind = self.cycle[i % len(self.cycle)]
        base = self.bases[i % len(self.bases)]
        k = self.seq[kind]
        self.seq[kind] += 1
        try:
            error = await self.senders[kind](base, k)
        except TimeoutError:
            error = "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            error = type(exc).__name__
        if error is None:
            self.answered_ok[kind] += 1
        return kind, error

    async def _post(self, url: str, data: bytes, headers: dict[str, str]) -> str | None:
        async with self.http.post(url, data=data, headers=headers) as r:
            body = await r.read()
            if 200 <= r.status < 300:
                return None
            return f"http {r.status} | {body[:200]!r}"

    def _sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self._mac_key, body, hashlib.sha256).hexdigest()

    async def baseline(self, base: str, k: int) -> str | None:
        body = {
            "customer": f"{self.run_id}-{self.customer(k)}",
            "external_id": f"{self.run_id}-{k}",
            "text": TEXTS[k % len(TEXTS)][1],
        }
        return await self._post(
            f"{base}/ingest", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )

    async def app(self, base: str, k: int) -> str | None:
        c = self.customer(k)
        body = {
            "contact": {"external_id": f"app-{self.run_id}-{c}", "name": f"Paciente {c}"},
            "message": {"external_id": f"{self.run_id}-{k}", "text": TEXTS[k % len(TEXTS)][1]},
        }
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.args.token}"}
        return await self._post(f"{base}/api/v1/inbound", json.dumps(body).encode(), headers)

    async def telegram(self, base: str, k: int) -> str | None:
        lang, text = TEXTS[(k + 1) % len(TEXTS)]
        user = 7_000_000_000 + self.run_num * 10_000_000 + self.customer(k)
        person = {"first_name": "Cliente", "last_name": str(self.customer(k))}
        update = {
            "update_id": self.run_num * 100_000_000 + k,
            "message": {
                "message_id": k + 1,
                "from": {"id": user, "is_bot": False, "language_code": lang, **person},
                "chat": {"id": user, "type": "private", **person},
                "date": int(time.time()),
                "text": text,
            },
        }
        headers = {
            "Content-Type": "application/json",
            "X-Telegram-Bot-Api-Secret-Token": self.args.telegram_secret,
        }
        return await self._post(f"{base}/webhooks/telegram", json.dumps(update).encode(), headers)

    async def email(self, base: str, k: int) -> str | None:
        c = self.customer(k)
        raw = (
            f"From: Cliente {c} <c{self.run_id}-{c}@bench.example>\r\n"
            "To: ayuda@careline.bench\r\n"
            f"Subject: Consulta {k % 97}\r\n"
            f"Date: {formatdate(usegmt=True)}\r\n"
            f"Message-ID: <{self.run_id}.{k}@bench.example>\r\n"
            # The provider's verdict (the bench instances trust mx.careline.bench).
            "Authentication-Results: mx.careline.bench; dmarc=pass header.from=bench.example\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n"
            f"{TEXTS[(k + 2) % len(TEXTS)][1]}\r\n\r\nUn saludo,\r\nCliente {c}\r\n"
        ).encode()
        headers = {"Content-Type": "message/rfc822", "X-Careline-Signature": self._sign(raw)}
        return await self._post(f"{base}/webhooks/email", raw, headers)

    def _phone(self, k: int) -> str:
        # Spanish mobiles (6 + 8 digits, all valid), a range of its own per run.
        return f"+346{(self.run_num * 1_000_000 + self.customer(k)) % 100_000_000:08d}"

    async def calls(self, base: str, k: int) -> str | None:
        missed = (k // 2) % 2 == 0
        if k % 2 == 0:
            record = {
                "provider": "bench",
                "call_id": f"{self.run_id}-{k}",
                "direction": "inbound",
                "from": self._phone(k),
                "to": "+34911234567",
                "status": "missed" if missed else "answered",
                "started_at": now_iso(),
                "duration_s": 0 if missed else 95,
            }
            body = json.dumps(record).encode()
            headers = {"Content-Type": "application/json", "X-Careline-Signature": self._sign(body)}
            return await self._post(f"{base}/webhooks/calls", body, headers)
        params = {
            "AccountSid": "AC" + "0" * 32,
            "CallSid": f"CA{self.run_id}{k:024d}",
            "CallStatus": "no-answer" if missed else "completed",
            "CallDuration": "0" if missed else "95",
            "Direction": "inbound",
            "From": self._phone(k),
            "To": "+34911234567",
            "Timestamp": formatdate(usegmt=True),
        }
        path = "/webhooks/calls/twilio"
        # Twilio signs the public URL it was given, whichever instance the balancer picks.
        signed = (
            self.args.public_url.rstrip("/")
            + path
            + "".join(name + params[name] for name in sorted(params))
        )
        mac = hmac.new(self.args.twilio_token.encode(), signed.encode(), hashlib.sha1).digest()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": base64.b64encode(mac).decode(),
        }
        return await self._post(f"{base}{path}", urlencode(params).encode(), headers)

    async def webchat(self, base: str, k: int) -> str | None:
        pool = self.visitors[base]
        start = self.rr[base]
        # The next socket that is not being replaced (or the next one, if all are).
        for step in range(len(pool)):
            visitor = pool[(start + step) % len(pool)]
            if visitor.ready.is_set():
                break
        self.rr[base] = start + step + 1
        return await visitor.send(f"m{k}", TEXTS[(k + 3) % len(TEXTS)][1])


async def closed_loop(load: Load, concurrency: int, warmup: float, duration: float) -> Stats:
    stats = Stats()
    counter = itertools.count()
    t_measure = time.perf_counter() + warmup
    t_end = t_measure + duration

    async def worker() -> None:
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            kind, error = await load.send(next(counter))
            t1 = time.perf_counter()
            if t_measure <= t1 <= t_end:
                stats.record(kind, error, t1 - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return stats


async def open_loop(
    load: Load, rate: float, warmup: float, duration: float, max_in_flight: int
) -> tuple[Stats, int]:
    """Fixed schedule; latency from the scheduled time. Arrivals beyond `max_in_flight`
    outstanding requests are dropped and counted (the server has fallen hopelessly behind)."""
    stats = Stats()
    interval = 1.0 / rate
    total = int((warmup + duration) * rate)
    t0 = time.perf_counter() + 0.05
    t_measure = t0 + warmup
    in_flight: set[asyncio.Task[None]] = set()
    dropped = 0

    async def one(i: int, due: float) -> None:
        kind, error = await load.send(i)
        if due >= t_measure:
            stats.record(kind, error, time.perf_counter() - due)

    for i in range(total):
        due = t0 + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= max_in_flight:
            dropped += 1
            if due >= t_measure:
                stats.record(load.cycle[i % len(load.cycle)], "dropped: client backlog full", 0)
            continue
        task = asyncio.create_task(one(i, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight, timeout=TIMEOUT.total + 5)
    return stats, dropped


async def run(args: argparse.Namespace) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=args.max_in_flight, keepalive_timeout=4)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as http:
        load = Load(args, http)
        await load.prepare()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        dropped = 0
        if args.mode == "closed":
            stats = await closed_loop(load, args.concurrency, args.warmup, args.duration)
        else:
            if not args.rate or args.rate <= 0:
                raise SystemExit("--mode open needs --rate")
            stats, dropped = await open_loop(
                load, args.rate, args.warmup, args.duration, args.max_in_flight
            )
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        await load.close()
    return {
        "target": args.target,
        "mode": args.mode,
        "bases": load.bases,
        "concurrency": args.concurrency if args.mode == "closed" else None,
        "offered_rate": args.rate if args.mode == "open" else None,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "run_id": load.run_id,
        "mix": load.cycle[0] if args.target == "baseline" else args.mix,
        "dropped": dropped,
        "setup_errors": dict(load.setup_errors),
        "answered_ok_total": dict(load.answered_ok),
        "client_cpu_pct": round(100 * cpu / wall, 1),  # of one core: is the client the limit?
        **stats.summary(args.duration),
    }


# -- stubs: the Telegram Bot API and an SMTP sink ----------------------------------------------


async def _telegram_method(request: web.Request) -> web.Response:
    form = await request.post()
    if request.match_info["method"].lower() != "sendmessage":
        return web.json_response({"ok": True, "result": True})
    chat = int(str(form.get("chat_id", "0")))
    result = {
        "message_id": random.randint(1, 2**31),
        "date": int(time.time()),
        "chat": {"id": chat, "type": "private", "first_name": "Cliente"},
        "from": {"id": 1, "is_bot": True, "first_name": "Careline", "username": "careline_bot"},
        "text": str(form.get("text", "")),
    }
    return web.json_response({"ok": True, "result": result})


async def _smtp_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Just enough ESMTP to accept mail (no STARTTLS offered, no auth): everything is 250."""
    try:
        writer.write(b"220 bench ESMTP sink\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-bench\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 20000000\r\n")
            elif verb == b"DATA":
                writer.write(b"354 end with <CRLF>.<CRLF>\r\n")
                await writer.drain()
                while await reader.readline() not in (b".\r\n", b".\n", b""):
                    pass
                writer.write(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                writer.write(b"250 OK\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def stubs(args: argparse.Namespace) -> None:
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", _telegram_method)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.telegram_port).start()
    smtp = await asyncio.start_server(_smtp_session, "127.0.0.1", args.smtp_port)
    print("stubs ready", flush=True)
    async with smtp:
        await smtp.serve_forever()


def _event_loop_runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="drive load and report")
    r.add_argument("--base", action="append", required=True, help="base URL; repeat for more")
    r.add_argument("--target", choices=["careline", "baseline"], default="careline")
    r.add_argument("--mode", choices=["closed", "open"], default="closed")
    r.add_argument("--concurrency", type=int, default=32, help="closed loop: workers")
    r.add_argument("--rate", type=float, help="open loop: arrivals per second")
    r.add_argument("--warmup", type=float, default=5.0)
    r.add_argument("--duration", type=float, default=30.0)
    r.add_argument("--mix", default=DEFAULT_MIX, help=f"channel shares (default {DEFAULT_MIX})")
    r.add_argument("--per-customer", type=int, default=4, help="messages per customer")
    r.add_argument("--customers-block", type=int, default=64, help="customers interleaved")
    r.add_argument("--sockets", type=int, default=16, help="web chat sockets per base URL")
    r.add_argument("--max-in-flight", type=int, default=1000)
    r.add_argument("--run-id", default="")
    env = os.environ.get
    r.add_argument("--token", default=env("BENCH_API_TOKEN", ""), help="app: bearer token")
    r.add_argument("--webhook-secret", default=env("CARELINE_WEBHOOK_SECRET", ""))
    r.add_argument("--telegram-secret", default=env("CARELINE_TELEGRAM_WEBHOOK_SECRET", ""))
    r.add_argument("--twilio-token", default=env("CARELINE_TWILIO_AUTH_TOKEN", ""))
    r.add_argument("--public-url", default=env("CARELINE_PUBLIC_URL", "http://127.0.0.1:8000"))
    r.add_argument("--json", action="store_true", help="print one JSON object")
    s = sub.add_parser("stubs", help="serve a Telegram Bot API stub and an SMTP sink")
    s.add_argument("--telegram-port", type=int, required=True)
    s.add_argument("--smtp-port", type=int, required=True)
    args = ap.parse_args()

    with _event_loop_runner() as runner:
        if args.cmd == "stubs":
            with contextlib.suppress(KeyboardInterrupt):
                runner.run(stubs(args))
            return 0
        result = runner.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
