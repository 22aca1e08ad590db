"""Authorisation matrix: every route of the app x every kind of caller, against a table.

The expected outcome comes from `TABLE` below (who may call what), written from the design,
not read from the code under test: a route added without a row, or a role check that drifts
from the table, fails here. Then IDOR probes: a first-line agent naming second-line ids gets
the very answer a missing id gets (404), never 403 or 200.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from pydantic import SecretStr
from starlette.routing import BaseRoute, Route, WebSocketRoute

from channels.telegram.adapter import TelegramChannel, make_bot
from channels.webchat import WebchatChannel, WebchatConfig
from models import Attachment, CallbackRequest, Message
from router.api import create_app
from router.runtime import Runtime
from tests.conftest import ADMIN, ADMIN_TOKEN, auth, make_agent
from tests.support.factories import count_messages

# -- who may call what -------------------------------------------------------------------

AGENT_ROLES = ("agent_l1", "agent_l2", "supervisor", "admin")
ROLES = (*AGENT_ROLES, "integration")
# `admin` is an agent whose role is admin; `admin_token` is the bootstrap CARELINE_ADMIN_TOKEN.
CALLERS = (*ROLES, "admin_token", "anonymous", "garbage", "revoked")
UNAUTHENTICATED = frozenset({"anonymous", "garbage", "revoked"})

AGENTS = frozenset({"agent_l1", "agent_l2", "supervisor", "admin", "admin_token"})
MANAGERS = frozenset({"supervisor", "admin", "admin_token"})
INTEGRATIONS = frozenset({"integration", "admin", "admin_token"})
ADMINS = frozenset({"admin", "admin_token"})
CLINICIANS = frozenset({"agent_l2", "supervisor", "admin", "admin_token"})

# (method, path) -> callers allowed. Everything else authenticated gets 403, the rest 401.
TABLE: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/v1/agents"): AGENTS,
    ("POST", "/api/v1/agents"): MANAGERS,
    ("GET", "/api/v1/agents/me"): AGENTS,
    ("PUT", "/api/v1/agents/{agent_id}/presence"): AGENTS,
    ("DELETE", "/api/v1/agents/{agent_id}"): MANAGERS,
    ("GET", "/api/v1/queues"): AGENTS,
    ("GET", "/api/v1/conversations"): AGENTS,
    ("GET", "/api/v1/conversations/{conversation_id}"): AGENTS,
    ("GET", "/api/v1/conversations/{conversation_id}/messages"): AGENTS,
    ("POST", "/api/v1/conversations/{conversation_id}/messages"): AGENTS,
    ("POST", "/api/v1/conversations/{conversation_id}/claim"): AGENTS,
    ("POST", "/api/v1/conversations/{conversation_id}/assign"): AGENTS,
    ("POST", "/api/v1/conversations/{conversation_id}/transfer"): AGENTS,
    ("POST", "/api/v1/conversations/{conversation_id}/escalate"): AGENTS,
    ("POST", "/api/v1/conversations/{conversation_id}/status"): AGENTS,
    ("GET", "/api/v1/contacts/{contact_id}"): AGENTS,
    ("DELETE", "/api/v1/contacts/{contact_id}"): MANAGERS,
    ("POST", "/api/v1/contacts/{contact_id}/merge"): AGENTS,
    ("GET", "/api/v1/contacts/{contact_id}/export"): MANAGERS,
    ("GET", "/api/v1/events"): AGENTS,
    ("GET", "/api/v1/callbacks"): AGENTS,
    ("POST", "/api/v1/callbacks/{callback_id}/outcome"): AGENTS,
    ("GET", "/api/v1/attachments/{attachment_id}/content"): AGENTS,
    ("POST", "/webchat/conversations/{conversation_id}/typing"): AGENTS,
    ("POST", "/api/v1/conversations/{conversation_id}/tags"): AGENTS,
    ("GET", "/api/v1/search"): AGENTS,
    ("GET", "/api/v1/canned-replies"): AGENTS,
    ("POST", "/api/v1/canned-replies"): MANAGERS,
    ("GET", "/api/v1/canned-replies/{reply_id}"): AGENTS,
    ("PATCH", "/api/v1/canned-replies/{reply_id}"): MANAGERS,
    ("DELETE", "/api/v1/canned-replies/{reply_id}"): MANAGERS,
    ("POST", "/api/v1/canned-replies/{reply_id}/render"): AGENTS,
    ("GET", "/api/v1/reports/{report}"): MANAGERS,
    ("GET", "/api/v1/audit/reads"): ADMINS,
    ("GET", "/api/v1/audit/reads/export"): ADMINS,
    ("POST", "/api/v1/inbound"): INTEGRATIONS,
    ("GET", "/api/v1/inbound/messages"): INTEGRATIONS,
    ("POST", "/api/v1/inbound/rating"): INTEGRATIONS,
    # The staff console's read models (router/console/api.py).
    ("GET", "/api/v1/conversations/{conversation_id}/activity"): AGENTS,
    ("GET", "/api/v1/crises"): CLINICIANS,
    ("GET", "/api/v1/wallboard"): MANAGERS,
    ("POST", "/api/v1/agents/{agent_id}/invitation"): MANAGERS,
}

# Answers an allowed caller gets when it is not the plain success of the route. The fixture
# has no Telegram channel (no file to stream) and app conversations have no web chat visitor:
# the detail proves the role check was passed.
OK: dict[tuple[str, str], tuple[int, str]] = {
    ("POST", "/api/v1/agents"): (201, ""),
    ("DELETE", "/api/v1/agents/{agent_id}"): (204, ""),
    ("POST", "/api/v1/conversations/{conversation_id}/messages"): (201, ""),
    ("POST", "/api/v1/canned-replies"): (201, ""),
    ("DELETE", "/api/v1/canned-replies/{reply_id}"): (204, ""),
    ("GET", "/api/v1/attachments/{attachment_id}/content"): (404, "no downloadable content"),
    ("POST", "/webchat/conversations/{conversation_id}/typing"): (404, "no web chat visitor"),
    ("POST", "/api/v1/agents/{agent_id}/invitation"): (201, ""),
}
OK_FOR: dict[tuple[str, str, str], tuple[int, str]] = {
    ("GET", "/api/v1/agents/me", "admin_token"): (404, "not an agent"),
    ("POST", "/api/v1/conversations/{conversation_id}/claim", "admin_token"): (422, "cannot claim"),
}

# Routes with their own authenticity (provider secrets, signatures, visitor tokens) or none.
OWN_AUTH = frozenset(
    {
        ("POST", "/webhooks/telegram"),
        ("POST", "/webhooks/email"),
        ("POST", "/webhooks/calls"),
        ("POST", "/webhooks/calls/twilio"),
        ("POST", "/webchat/sessions"),
        ("OPTIONS", "/webchat/sessions"),  # CORS preflight: origin check only
        ("GET", "/webchat/confirm-email"),
        ("POST", "/webchat/confirm-email"),
        # The one-click rating link in e-mail: its HMAC token is the authority.
        ("GET", "/email/rate"),
        ("WS", "/webchat/ws"),
        # The console's own sign-in: e-mail and password, then its session cookie (with CSRF
        # on writes); tests/integration/console. Its page redirect and static files.
        ("POST", "/console/api/session"),
        ("GET", "/console/api/session"),
        ("DELETE", "/console/api/session"),
        ("POST", "/console/api/heartbeat"),
        ("POST", "/console/api/invitations/accept"),
        ("GET", "/console"),
        ("GET", "/console/static/{name}"),
    }
)
PUBLIC = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
        ("GET", "/openapi.json"),
        ("GET", "/webchat/widget.js"),
        ("GET", "/webchat/demo"),
        ("GET", "/console/"),
    }
)

CLINIC = "https://clinic.example"
WEBCHAT = WebchatConfig(secret="webchat-authz-secret", allowed_origins=(CLINIC,))


def _flatten(routes: list[BaseRoute]) -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for r in routes:
        included = getattr(r, "original_router", None)
        if included is not None:  # FastAPI >= 0.160 keeps included routers as one node
            prefix = r.include_context.prefix  # type: ignore[attr-defined]
            assert prefix == "", "paths below assume no prefix"
            out.extend(_flatten(list(included.routes)))
        else:
            out.append(r)
    return out


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for r in _flatten(list(app.routes)):
        if isinstance(r, APIWebSocketRoute | WebSocketRoute):
            found.add(("WS", r.path))
        elif isinstance(r, APIRoute | Route):
            found |= {(m, r.path) for m in (r.methods or ()) if m != "HEAD"}
    return found


def openapi_routes(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, ops in app.openapi()["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_the_table_covers_every_route_of_the_app() -> None:
    app = create_app()
    assert openapi_routes(app) <= set(TABLE) | OWN_AUTH | PUBLIC, "a route without a table row"
    assert app_routes(app) == set(TABLE) | OWN_AUTH | PUBLIC


# -- the world the calls run in ------------------------------------------------------------

CLINICAL = "Me duele mucho el pecho desde ayer y no sé si tomar la medicación"


@dataclass
class World:
    client: httpx.AsyncClient
    rt: Runtime
    app: FastAPI
    tokens: dict[str, str | None] = field(default_factory=dict)
    agent_ids: dict[str, int] = field(default_factory=dict)
    seq: itertools.count[int] = field(default_factory=itertools.count)

    async def conv(self, *, assignee: int | None = None, second_line: bool = False) -> Any:
        n = next(self.seq)
        r = await self.client.post(
            "/api/v1/inbound",
            json={
                "contact": {"external_id": f"user-{n}"},
                "message": {"external_id": f"msg-{n}", "text": "Quiero cambiar mi cita"},
            },
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text
        cid = r.json()["conversation_id"]
        if second_line:
            r = await self.client.post(
                f"/api/v1/conversations/{cid}/escalate", json={"reason": "clinical"}, headers=ADMIN
            )
            assert r.status_code == 200, r.text
        if assignee is not None:
            r = await self.client.post(
                f"/api/v1/conversations/{cid}/assign", json={"agent_id": assignee}, headers=ADMIN
            )
            assert r.status_code == 200, r.text
        r = await self.client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)
        assert r.status_code == 200, r.text
        return r.json()

    async def canned_reply(self, queue: str | None = None) -> int:
        r = await self.client.post(
            "/api/v1/canned-replies",
            json={"title": f"reply-{next(self.seq)}", "body": "Hola", "queue": queue},
            headers=ADMIN,
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    async def callback(self, conv: Any) -> int:
        now = self.rt.now()
        async with self.rt.db.session() as s:
            cb = CallbackRequest(
                conversation_id=conv["id"],
                contact_id=conv["contact_id"],
                phone="+34600000000",
                first_call_at=now,
                last_call_at=now,
                last_call_status="missed",
            )
            s.add(cb)
            await s.flush()
            return cb.id

    async def attachment(self, conv: Any) -> int:
        async with self.rt.db.session() as s:
            msg = Message(
                conversation_id=conv["id"], direction="in", channel="app", text="see file"
            )
            s.add(msg)
            await s.flush()
            att = Attachment(message_id=msg.id, url="https://files.example/x.pdf", kind="file")
            s.add(att)
            await s.flush()
            return att.id


@pytest.fixture
async def world(client: httpx.AsyncClient, rt: Runtime) -> World:
    rt.channels["webchat"] = WebchatChannel(WEBCHAT)  # type: ignore[assignment]
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    w = World(client=client, rt=rt, app=transport.app)  # type: ignore[arg-type]
    for role in ROLES:
        # Offline: nothing is auto-assigned, so each call below sees the state it set up.
        agent_id, token = await make_agent(rt, name=role, role=role, presence="offline")
        w.tokens[role], w.agent_ids[role] = token, agent_id
    w.tokens |= {"admin_token": ADMIN_TOKEN, "anonymous": None, "garbage": "cl_not-a-token"}
    revoked_id, revoked = await make_agent(rt, name="gone", role="supervisor")
    r = await client.delete(f"/api/v1/agents/{revoked_id}", headers=ADMIN)
    assert r.status_code == 204, r.text
    w.tokens["revoked"] = revoked
    return w


@dataclass
class Call:
    method: str
    url: str
    json: Any = None
    params: dict[str, str] | None = None


Builder = Callable[[World, str], Awaitable[Call]]


def _fill(path: str, **ids: int) -> str:
    return path.format(**ids)


async def build(w: World, key: tuple[str, str], who: str) -> Call:
    """A request that succeeds for an allowed caller (fresh objects where it changes state)."""
    method, path = key
    me = w.agent_ids.get(who) if who in AGENT_ROLES else None
    if path.startswith("/api/v1/conversations/{") or path.startswith("/webchat/conversations"):
        action = path.rsplit("/", 1)[-1]
        conv = await w.conv(assignee=me if action == "assign" else None)
        body: Any = {
            "messages": {"text": "internal check", "internal": True},
            "assign": {"agent_id": None},
            "transfer": {"queue": "second_line", "reason": "authz"},
            "escalate": {"reason": "needs a clinician"},
            "status": {"status": "pending"},
            "tags": {"add": ["authz"]},
        }.get(action)
        return Call(
            method, _fill(path, conversation_id=conv["id"]), body if method == "POST" else None
        )
    if path.startswith("/api/v1/contacts/"):
        conv = await w.conv()
        url = _fill(path, contact_id=conv["contact_id"])
        if path.endswith("/merge"):
            other = await w.conv()
            return Call(method, url, {"other_contact_id": other["contact_id"]})
        return Call(method, url)
    if path.startswith("/api/v1/canned-replies/{reply_id}"):
        reply = await w.canned_reply()
        url = _fill(path, reply_id=reply)
        if path.endswith("/render"):
            return Call(method, url, {"conversation_id": (await w.conv())["id"]})
        return Call(method, url, {"title": "changed"} if method == "PATCH" else None)
    if key == ("POST", "/api/v1/canned-replies"):
        return Call(method, path, {"title": "t", "body": "Hola {first_name}"})
    if key == ("GET", "/api/v1/search"):
        await w.conv()
        return Call(method, path, params={"q": "cita"})
    if path == "/api/v1/reports/{report}":
        return Call(method, _fill(path, report="volume"))
    if path.startswith("/api/v1/audit/reads"):
        return Call(method, path, params={"contact_id": str((await w.conv())["contact_id"])})
    if path == "/api/v1/callbacks/{callback_id}/outcome":
        cb = await w.callback(await w.conv())
        return Call(method, _fill(path, callback_id=cb), {"outcome": "done"})
    if path == "/api/v1/attachments/{attachment_id}/content":
        return Call(method, _fill(path, attachment_id=await w.attachment(await w.conv())))
    if path == "/api/v1/agents/{agent_id}/presence":
        return Call(
            method, _fill(path, agent_id=me or w.agent_ids["agent_l1"]), {"presence": "away"}
        )
    if path == "/api/v1/agents/{agent_id}/invitation":
        n = next(w.seq)
        target, _ = await make_agent(w.rt, name=f"t-{n}", email=f"t{n}@x.example", role="agent_l1")
        return Call(method, _fill(path, agent_id=target))
    if path == "/api/v1/agents/{agent_id}":
        target, _ = await make_agent(w.rt, name=f"target-{next(w.seq)}", role="agent_l1")
        return Call(method, _fill(path, agent_id=target))
    if key == ("POST", "/api/v1/agents"):
        return Call(method, path, {"name": f"new-{next(w.seq)}", "role": "agent_l1"})
    if key == ("POST", "/api/v1/inbound"):
        n = next(w.seq)
        msg = {"external_id": f"in-{n}", "text": "hola"}
        return Call(method, path, {"contact": {"external_id": f"app-{n}"}, "message": msg})
    if key == ("POST", "/api/v1/inbound/rating"):
        # A resolved app conversation: the app user was asked to rate it.
        n = next(w.seq)
        msg = {"external_id": f"rate-{n}", "text": "hola"}
        r = await w.client.post(
            "/api/v1/inbound",
            json={"contact": {"external_id": f"rater-{n}"}, "message": msg},
            headers=ADMIN,
        )
        cid = r.json()["conversation_id"]
        r = await w.client.post(
            f"/api/v1/conversations/{cid}/status", json={"status": "resolved"}, headers=ADMIN
        )
        assert r.status_code == 200, r.text
        return Call(
            method, path, {"contact_external_id": f"rater-{n}", "conversation_id": cid, "score": 4}
        )
    if key == ("GET", "/api/v1/inbound/messages"):
        await w.conv()
        return Call(method, path, params={"contact_external_id": "user-0"})
    assert "{" not in path, f"no builder for {key}"
    return Call(method, path)


async def asgi_head(app: FastAPI, call: Call, headers: dict[str, str]) -> tuple[int, bytes]:
    """Status and content type of a streaming answer, then hang up (the SSE stream is endless)."""
    started: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
    hang_up = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and not started.done():
            ctype = dict(message.get("headers", [])).get(b"content-type", b"")
            started.set_result((message["status"], ctype))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": call.method,
        "scheme": "http",
        "path": call.url,
        "raw_path": call.url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("careline.test", 80),
        "app": app,
    }
    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    try:
        return await asyncio.wait_for(started, 10)
    finally:
        hang_up.set()
        try:
            await asyncio.wait_for(task, 5)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()


@dataclass(frozen=True)
class Answer:
    status: int
    problem: bool
    detail: str = ""


async def call_as(w: World, call: Call, who: str) -> Answer:
    token = w.tokens[who]
    headers = auth(token) if token is not None else {}
    if call.url == "/api/v1/events":
        status, ctype = await asgi_head(w.app, call, headers)
        return Answer(status, ctype.startswith(b"application/problem+json"))
    r = await w.client.request(
        call.method, call.url, json=call.json, params=call.params, headers=headers
    )
    is_problem = r.headers.get("content-type", "").startswith("application/problem+json")
    return Answer(r.status_code, is_problem, r.json().get("detail", "") if is_problem else "")


def expected(key: tuple[str, str], who: str) -> tuple[int, str]:
    if who in UNAUTHENTICATED:
        return 401, ""
    if who not in TABLE[key]:
        return 403, ""
    return OK_FOR.get((*key, who)) or OK.get(key) or (200, "")


@pytest.mark.parametrize("key", sorted(TABLE), ids=lambda k: f"{k[0]} {k[1]}")
async def test_authorisation_matrix(world: World, key: tuple[str, str]) -> None:
    got: dict[str, tuple[int, str]] = {}
    want: dict[str, tuple[int, str]] = {}
    for who in CALLERS:
        ans = await call_as(world, await build(world, key, who), who)
        want[who] = expected(key, who)
        needle = want[who][1]
        got[who] = (ans.status, needle if needle and needle in ans.detail else "")
        if ans.status >= 400:
            assert ans.problem, f"{who}: error {ans.status} is not problem+json"
    assert got == want


# -- IDOR: second-line ids in the hands of a first-line agent ------------------------------

IDS = re.compile(r"\d+")


async def test_first_line_agent_sees_second_line_ids_as_missing(world: World) -> None:
    l1 = auth(world.tokens["agent_l1"] or "")
    mine = await world.conv()
    theirs = await world.conv(second_line=True)
    assert theirs["queue"] == "second_line"
    secret = {
        "conversation_id": theirs["id"],
        "contact_id": theirs["contact_id"],
        "callback_id": await world.callback(theirs),
        "attachment_id": await world.attachment(theirs),
        "reply_id": await world.canned_reply(queue="second_line"),
    }
    missing = {k: 10_000 + v for k, v in secret.items()}
    bodies: dict[str, Any] = {
        "messages": {"text": "x"},
        "assign": {"agent_id": world.agent_ids["agent_l1"]},
        "transfer": {"queue": "first_line"},
        "escalate": {"reason": "because"},
        "status": {"status": "resolved"},
        "merge": {"other_contact_id": mine["contact_id"]},
        "outcome": {"outcome": "done"},
        "tags": {"add": ["x"]},
        "render": {"conversation_id": mine["id"]},
    }
    probed = 0
    for method, path in sorted(TABLE):
        if "agent_l1" not in TABLE[method, path] or "{" not in path or "{agent_id}" in path:
            continue
        body = bodies.get(path.rsplit("/", 1)[-1]) if method != "GET" else None
        answers = []
        for ids in (secret, missing):
            r = await world.client.request(method, path.format(**ids), json=body, headers=l1)
            assert r.headers["content-type"].startswith("application/problem+json"), path
            p = r.json()
            answers.append((r.status_code, p["title"], IDS.sub("N", p.get("detail", ""))))
        assert answers[0] == answers[1], f"{method} {path}: hidden id answers unlike a missing one"
        assert answers[0][0] == 404, f"{method} {path}"
        probed += 1
    assert probed >= 10

    # The id in the body of a merge is checked as well as the one in the path.
    r = await world.client.post(
        f"/api/v1/contacts/{mine['contact_id']}/merge",
        json={"other_contact_id": theirs["contact_id"]},
        headers=l1,
    )
    assert r.status_code == 404, r.text
    # Filters never reach across: listing by a hidden contact or callbacks shows nothing.
    r = await world.client.get(
        "/api/v1/conversations", params={"contact_id": theirs["contact_id"]}, headers=l1
    )
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []
    r = await world.client.get("/api/v1/callbacks", headers=l1)
    assert secret["callback_id"] not in [c["id"] for c in r.json()["items"]]
    # A second-line agent does see them: the probe above used live ids.
    l2 = auth(world.tokens["agent_l2"] or "")
    r = await world.client.get(f"/api/v1/conversations/{theirs['id']}", headers=l2)
    assert r.status_code == 200, r.text
    r = await world.client.get(f"/api/v1/contacts/{theirs['contact_id']}", headers=l2)
    assert r.status_code == 200, r.text


# -- routes with their own authenticity never take a Bearer token instead -----------------


async def test_public_routes_ignore_bearer_tokens(world: World) -> None:
    for method, path in sorted(PUBLIC):
        plain = await world.client.request(method, path)
        with_admin = await world.client.request(method, path, headers=ADMIN)
        assert plain.status_code == with_admin.status_code == 200, path


async def test_webhooks_never_accept_a_bearer_token(world: World, rt: Runtime) -> None:
    # Every channel configured, so a refusal below is the signature check, not a 404.
    rt.settings = rt.settings.model_copy(
        update={
            "webhook_secret": SecretStr("wh-secret"),
            "twilio_auth_token": SecretStr("tw-secret"),
            "telegram_bot_token": SecretStr("123456:test-token"),
            "telegram_webhook_secret": SecretStr("tg-secret"),
            "public_url": "http://careline.test",
        }
    )
    telegram = TelegramChannel(make_bot("123456:test-token"))
    rt.channels["telegram"] = telegram  # type: ignore[assignment]
    stored = await count_messages(rt)
    bodies: dict[str, dict[str, Any]] = {
        "/webhooks/telegram": {"json": {"update_id": 1}},
        "/webhooks/email": {
            "content": b"From: a@b.c\r\nMessage-ID: <1@b.c>\r\n\r\nhi",
            "headers": {"Content-Type": "message/rfc822"},
        },
        "/webhooks/calls": {
            "json": {
                "provider": "x",
                "call_id": "1",
                "direction": "inbound",
                "from": "+34600000000",
                "to": "+34600000001",
                "status": "missed",
                "started_at": "2026-01-01T00:00:00Z",
                "duration_s": 0,
            }
        },
        "/webhooks/calls/twilio": {"data": {"CallSid": "CA1", "CallStatus": "no-answer"}},
    }
    # The admin token as a Bearer, and smuggled into each scheme's own header.
    smuggled = {
        "Authorization": f"Bearer {ADMIN_TOKEN}",
        "X-Telegram-Bot-Api-Secret-Token": ADMIN_TOKEN,
        "X-Careline-Signature": f"sha256={ADMIN_TOKEN}",
        "X-Twilio-Signature": ADMIN_TOKEN,
    }
    for path, kwargs in bodies.items():
        for headers in ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, smuggled):
            extra = dict(kwargs)
            headers = {**headers, **extra.pop("headers", {})}
            r = await world.client.post(path, headers=headers, **extra)
            assert r.status_code in (401, 403), f"{path}: {r.status_code} {r.text}"
            assert r.headers["content-type"].startswith("application/problem+json"), path
    assert await count_messages(rt) == stored, "a refused delivery stored something"
    await telegram.aclose()


async def test_webchat_takes_visitor_tokens_only(world: World) -> None:
    r = await world.client.post("/webchat/sessions", json={"token": ADMIN_TOKEN}, headers=ADMIN)
    assert r.status_code == 401, r.text
    agent = world.tokens["agent_l2"] or ""
    r = await world.client.post("/webchat/sessions", json={"token": agent}, headers=auth(agent))
    assert r.status_code == 401, r.text
    for method in ("GET", "POST"):
        r = await world.client.request(
            method, "/webchat/confirm-email", params={"token": ADMIN_TOKEN}, headers=ADMIN
        )
        assert r.status_code == 400, r.text
    for query, headers in ((f"token={ADMIN_TOKEN}", {}), ("", ADMIN)):
        assert await ws_close_code(world.app, query, headers) == 4401


async def ws_close_code(app: FastAPI, query: str, headers: dict[str, str]) -> int:
    """The close code of a socket opened with these credentials (the route accepts first)."""
    closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    gone = asyncio.Event()
    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        await gone.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.close" and not closed.done():
            closed.set_result(int(message.get("code", 1000)))
        elif message["type"] == "websocket.send" and not closed.done():
            closed.set_result(0)  # it talked to us: the credentials were taken

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/webchat/ws",
        "raw_path": b"/webchat/ws",
        "query_string": query.encode(),
        "root_path": "",
        "scheme": "ws",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("careline.test", 80),
        "subprotocols": [],
        "app": app,
    }
    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    try:
        return await asyncio.wait_for(closed, 10)
    finally:
        gone.set()
        try:
            await asyncio.wait_for(task, 5)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()


# -- object level: who may revoke whom --------------------------------------------------


@pytest.mark.parametrize("victim", ["admin", "supervisor", "integration"])
async def test_a_supervisor_cannot_revoke_accounts_only_an_admin_may_create(
    world: World, victim: str
) -> None:
    sup = auth(world.tokens["supervisor"] or "")
    other_id, other_token = await make_agent(world.rt, name=f"other-{victim}", role=victim)
    r = await world.client.delete(f"/api/v1/agents/{other_id}", headers=sup)
    assert r.status_code == 403, r.text
    r = await world.client.post("/api/v1/agents", json={"name": "x", "role": victim}, headers=sup)
    assert r.status_code == 403, r.text
    # Still valid: the refused revocation changed nothing.
    probe = "/api/v1/inbound/messages" if victim == "integration" else "/api/v1/queues"
    params = {"contact_external_id": "nobody"} if victim == "integration" else None
    r = await world.client.get(probe, params=params, headers=auth(other_token))
    assert r.status_code in (200, 404), r.text
    r = await world.client.delete(
        f"/api/v1/agents/{other_id}", headers=auth(world.tokens["admin"] or "")
    )
    assert r.status_code == 204, r.text
