"""Stand-in delivery targets for fault tests: they count what Careline delivers, per de-dup key.

Each Careline instance is pointed at its own endpoint (`via`: a path of the app-callback
receiver, a port of the SMTP sink), so a repeated delivery can be traced to the instance that
sent each copy, with no timing guesswork: at-least-once after a crash means the dead
instance's copy, then the survivor's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

from tests.support.server import serve_aiohttp


@dataclass(frozen=True)
class Delivery:
    key: str
    via: str
    at: float  # time.monotonic() on arrival, for the failure report only


@dataclass
class DeliveryLog:
    """Every delivery a stand-in accepted, in arrival order."""

    deliveries: list[Delivery] = field(default_factory=list)

    def add(self, key: str, via: str) -> None:
        self.deliveries.append(Delivery(key, via, time.monotonic()))

    def by_key(self) -> dict[str, list[Delivery]]:
        out: dict[str, list[Delivery]] = defaultdict(list)
        for d in self.deliveries:
            out[d.key].append(d)
        return dict(out)

    def duplicates(self) -> dict[str, list[Delivery]]:
        return {k: ds for k, ds in self.by_key().items() if len(ds) > 1}


class AppCallbackReceiver:
    """The app back-end of `CARELINE_APP_CALLBACK_URL`: `POST /callback/<via>`, checks the
    `X-Careline-Signature` and records the reply under its de-dup key, Careline's message id."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.log = DeliveryLog()
        self.bad_signatures = 0
        self.base = ""
        self._runner: web.AppRunner | None = None

    def url(self, via: str) -> str:
        return f"{self.base}/callback/{via}"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/callback/{via}", self._callback)
        self._runner, self.base = await serve_aiohttp(app)
        return self.base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _callback(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Careline-Signature", "")):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        payload: dict[str, Any] = json.loads(body)
        self.log.add(str(payload["message_id"]), request.match_info["via"])
        return web.json_response({"ok": True})


# Careline's outbound Message-ID: careline.<conversation>.<message>.<random>@<domain>.
_CARELINE_MSGID = re.compile(r"<?careline\.(\d+)\.(\d+)\.")


class _SmtpHandler:
    def __init__(self, sink: SmtpSink, via: str) -> None:
        self.sink = sink
        self.via = via

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        mail = message_from_bytes(envelope.content, policy=policy.default)
        msgid = str(mail.get("Message-ID", ""))
        m = _CARELINE_MSGID.match(msgid)
        # The random part differs per attempt, so the de-dup key is Careline's message id.
        key = m.group(2) if m else msgid
        self.sink.message_ids[key].append(msgid)
        self.sink.log.add(key, self.via)
        return "250 Message accepted"


class SmtpSink:
    """A real SMTP server (aiosmtpd) per `via`, all recording into one `DeliveryLog`."""

    def __init__(self) -> None:
        self.log = DeliveryLog()
        self.message_ids: dict[str, list[str]] = defaultdict(list)  # key → Message-IDs
        self._controllers: list[Controller] = []

    def start(self, via: str) -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        controller = Controller(_SmtpHandler(self, via), hostname="127.0.0.1", port=port)
        controller.start()
        self._controllers.append(controller)
        return port

    def stop(self) -> None:
        for c in self._controllers:
            c.stop()
        self._controllers.clear()
