"""HTTP and WebSocket side of the web chat: sessions, the socket, the widget and its demo.

Close codes (with a short reason) on the socket: 4400 malformed frame (a `rate` frame
without a message id or with a score other than 1-5 too), 4401 bad or expired
token, 4403 origin not allowed, 4404 channel not configured, 4409 too many sockets for this
visitor, 4429 too many messages per minute, 1009 frame too big, 1011 database unavailable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, BackgroundTasks, Request, Response, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from channels.webchat import confirm, feed
from channels.webchat.adapter import WebchatChannel, WebchatConfig
from channels.webchat.hub import Connection, SendTimeout
from channels.webchat.tokens import (
    BadToken,
    ExpiredToken,
    VisitorClaims,
    new_visitor_id,
    sign,
    verify,
)
from models import Conversation
from models.messages import InboundMessage, Sender, raw_json_too_deep
from router.api.deps import AgentDep, IdPath, RuntimeDep, SessionDep
from router.api.problems import problem
from router.api.transport import abort
from router.decide import satisfaction as satisfaction_rules
from router.errors import Forbidden, InvalidInput, NotFound, RouterError, Unauthorized
from router.flows import satisfaction
from router.flows.ingest import IngestResult, ingest
from router.flows.ingest import ahead as ingest_ahead
from router.flows.outbound import recipient_for
from router.repo import access
from router.repo.events import conv_event
from router.runtime import Runtime

log = logging.getLogger(__name__)

api_router = APIRouter(tags=["webchat"])

_TOKEN_IN_URL = re.compile(r"(token=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """The contract puts the visitor token in the socket's query string, and uvicorn logs
    every accepted socket's path with its query string (on `uvicorn.error`, even with the
    access log off). Bearer tokens never belong in logs: redact them there."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "token=" in a for a in args):
            record.args = tuple(
                _TOKEN_IN_URL.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in args
            )
        return True


for _name in ("uvicorn.error", "uvicorn.access"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, RedactTokens) for f in _logger.filters):
        _logger.addFilter(RedactTokens())

CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(default=None, max_length=4096)
    name: str | None = Field(default=None, max_length=100)
    email: EmailStr | None = None
    locale: str | None = Field(default=None, max_length=16, pattern=LOCALE.pattern)


class SessionRead(BaseModel):
    token: str
    visitor_id: str
    conversation_id: int | None
    expires_at: int


def webchat_channel(rt: Runtime) -> WebchatChannel:
    channel = rt.channels.get("webchat")
    if not isinstance(channel, WebchatChannel):
        raise NotFound("the webchat channel is not configured")
    return channel


def origin_allowed(channel: WebchatChannel, origin: str | None, host: str | None) -> bool:
    """Pages on an allowed origin, or on Careline itself. No Origin header means no browser
    (browsers always send one on cross-site fetches and sockets): the token is the guard."""
    if origin is None:
        return True
    origin = origin.rstrip("/")
    allowed = channel.config.allowed_origins
    if "*" in allowed or origin in allowed:
        return True
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


def _cors(origin: str | None) -> dict[str, str]:
    if not origin:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


@api_router.options("/webchat/sessions", include_in_schema=False)
async def sessions_preflight(request: Request, rt: RuntimeDep) -> Response:
    channel = webchat_channel(rt)
    origin = request.headers.get("origin")
    if not origin_allowed(channel, origin, request.headers.get("host")):
        return Response(status_code=403)
    headers = _cors(origin) | {
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": "600",
    }
    return Response(status_code=204, headers=headers)


@api_router.post("/webchat/sessions", response_model=SessionRead, status_code=201)
async def create_session(
    request: Request, rt: RuntimeDep, background: BackgroundTasks
) -> JSONResponse:
    """A signed visitor token: a new visitor, or with `{"token": …}` the same visitor again
    (with a later expiry, and any new name/e-mail/locale). The e-mail is kept unverified: it
    never joins this visitor to another contact."""
    origin = request.headers.get("origin")
    try:
        channel = webchat_channel(rt)
        if not origin_allowed(channel, origin, request.headers.get("host")):
            raise Forbidden("this origin may not embed the web chat")
        body = await _session_body(request)
        now = rt.now()
        if body.token:
            try:
                claims = verify(channel.key, body.token, now)
            except BadToken as exc:
                raise Unauthorized(f"{exc}; start a new session without a token") from exc
        else:
            claims = VisitorClaims(new_visitor_id(), 0)
        previous_email = claims.email
        claims = VisitorClaims(
            claims.visitor_id,
            int(now.timestamp()) + channel.config.token_ttl_s,
            name=body.name.strip() or None if body.name else claims.name,
            email=str(body.email).lower() if body.email else claims.email,
            locale=body.locale or claims.locale,
        )
        async with rt.db.session() as session:
            conv = await feed.latest_conversation(session, claims.visitor_id)
        out = SessionRead(
            token=sign(channel.key, claims),
            visitor_id=claims.visitor_id,
            conversation_id=conv.id if conv else None,
            expires_at=claims.expires_at,
        )
    except RouterError as exc:
        # Rendered here rather than by the app's handler, so the widget (another origin)
        # can read the status: a 401 tells it to drop the stored token.
        resp = problem(exc.status_code, exc.title, exc.detail, exc.type)
        if exc.status_code != 403:
            resp.headers.update(_cors(origin))
        return resp
    if claims.email and claims.email != previous_email:
        # A new address: mail the confirmation link after the response, so a slow or
        # failing mail server never delays or fails the visitor's session.
        background.add_task(
            confirm.send_confirmation, rt, channel, claims.visitor_id, claims.email, claims.locale
        )
    return JSONResponse(out.model_dump(), status_code=201, headers=_cors(origin))


async def _session_body(request: Request) -> SessionCreate:
    raw = await request.body()
    if len(raw) > 8192:
        raise InvalidInput("request body too large")
    try:
        if raw_json_too_deep(raw):
            raise ValueError("nested too deep")
        data = json.loads(raw) if raw.strip() else {}
        return SessionCreate.model_validate(data)
    except (ValueError, ValidationError) as exc:
        # Name the fields at fault, never their values.
        where = ""
        if isinstance(exc, ValidationError):
            where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise InvalidInput(f"invalid session request {where}".strip()) from None


@lru_cache
def _static(name: str) -> bytes:
    return (resources.files("channels.webchat") / "static" / name).read_bytes()


@api_router.get("/webchat/widget.js", include_in_schema=False)
async def widget_js() -> Response:
    return Response(
        _static("widget.js"),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@api_router.get("/webchat/demo", include_in_schema=False)
async def demo_page() -> HTMLResponse:
    # A strict policy proves the widget needs no inline script, eval or third-party host.
    csp = (
        "default-src 'self'; script-src 'self'; connect-src 'self' ws: wss:; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"
    )
    return HTMLResponse(_static("demo.html"), headers={"Content-Security-Policy": csp})


# The confirmation page carries its token in the URL: never leak it onward, never cache it.
_CONFIRM_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def _confirm_claims(rt: Runtime, token: str) -> confirm.ConfirmClaims | JSONResponse:
    try:
        channel = webchat_channel(rt)
        return confirm.read_token(channel.key, token, rt.now())
    except RouterError as exc:
        return problem(exc.status_code, exc.title, exc.detail, exc.type)
    except ExpiredToken:
        return problem(410, "Link expired", "this confirmation link has expired")
    except BadToken:
        return problem(400, "Bad request", "this confirmation link is not valid")


@api_router.get("/webchat/confirm-email", include_in_schema=False, response_model=None)
async def confirm_email_page(rt: RuntimeDep, token: str = "") -> Response:
    """The link in the confirmation mail: a page with a button (mail scanners open links
    too, and must not confirm an address on the owner's behalf)."""
    claims = _confirm_claims(rt, token)
    if isinstance(claims, Response):
        return claims
    return HTMLResponse(confirm.ask_page(claims), headers=_CONFIRM_HEADERS)


@api_router.post("/webchat/confirm-email", include_in_schema=False, response_model=None)
async def confirm_email(rt: RuntimeDep, token: str = "") -> Response:
    """The visitor owns the address: it becomes a verified identity of their contact.
    Pressing the button again changes nothing."""
    claims = _confirm_claims(rt, token)
    if isinstance(claims, Response):
        return claims
    await confirm.confirm(rt, claims)
    return HTMLResponse(confirm.done_page(claims), headers=_CONFIRM_HEADERS)


class TypingRead(BaseModel):
    sockets: int


@api_router.post("/webchat/conversations/{conversation_id}/typing", response_model=TypingRead)
async def agent_typing(
    conversation_id: IdPath, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> TypingRead:
    """An agent is typing: show it to the visitor's sockets on this instance (ephemeral,
    never stored; the agent's front-end repeats it every few seconds while typing)."""
    channel = webchat_channel(rt)
    conv = await access.get_conversation(session, p, conversation_id)
    try:
        visitor = await recipient_for(session, conv, "webchat")
    except RouterError as exc:
        raise NotFound("this conversation has no web chat visitor") from exc
    sent = await channel.hub.push(visitor, {"type": "typing", "typing": True, "author": "agent"})
    return TypingRead(sockets=sent)


# --- the socket -------------------------------------------------------------------------


class Closed(Exception):
    """Close the socket with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@api_router.websocket("/webchat/ws")
async def webchat_socket(websocket: WebSocket) -> None:
    """JSON frames; on connect, every message after `since` (all when absent), in order."""
    rt: Runtime = websocket.app.state.runtime
    # Accept first: a close before the handshake reaches browsers as a bare 403 without
    # code or reason, and the widget needs both to decide whether to retry.
    await websocket.accept()
    conn: Connection | None = None
    channel: WebchatChannel | None = None
    close: tuple[int, str] | None = None
    timeout_s = WebchatConfig.send_timeout_s
    try:
        channel = webchat_channel_or_close(rt)
        timeout_s = channel.config.send_timeout_s
        if not origin_allowed(
            channel, websocket.headers.get("origin"), websocket.headers.get("host")
        ):
            raise Closed(4403, "origin not allowed")
        try:
            claims = verify(channel.key, websocket.query_params.get("token", ""), rt.now())
        except BadToken as exc:
            raise Closed(4401, str(exc)) from None
        since = _since(websocket.query_params.get("since"))
        conn = Connection(claims.visitor_id, websocket.send_text, timeout_s)
        if not channel.hub.register(conn, channel.config.max_sockets_per_visitor):
            conn = None
            raise Closed(4409, "too many open chats for this visitor")
        await _serve(rt, channel, websocket, conn, claims, since)
    except Closed as exc:
        close = (exc.code, exc.reason)
    except WebSocketDisconnect:
        pass
    except SendTimeout:
        # The visitor stopped reading: a close frame would only queue behind what they left
        # unread. Drop the connection.
        log.info("webchat socket: visitor not reading; connection dropped")
        abort(websocket.scope)
    except (OperationalError, DBAPIError):
        log.warning("webchat socket: database unavailable", exc_info=True)
        close = (1011, "temporarily unavailable; reconnect later")
    except OSError:
        # uvicorn's ClientDisconnected: the visitor went away while we were sending.
        close = (1011, "connection error")
    finally:
        # First: the slot is free whatever the close below takes.
        if conn is not None and channel is not None:
            channel.hub.unregister(conn)
    if close is not None:
        await _close(websocket, *close, timeout_s=timeout_s)


def webchat_channel_or_close(rt: Runtime) -> WebchatChannel:
    try:
        return webchat_channel(rt)
    except NotFound:
        raise Closed(4404, "the webchat channel is not configured") from None


def _since(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 18:
        raise Closed(4400, "since must be a message id")
    return int(raw)


# Closes for going over a limit: the peer is flooding us, perhaps not reading at all.
LIMIT_CLOSES = frozenset({1009, 4409, 4429})


async def _close(websocket: WebSocket, code: int, reason: str, *, timeout_s: float) -> None:
    """Send the close frame within `timeout_s`, else drop the connection. After a limit
    close the connection is dropped anyway once `timeout_s` passed: a peer that reads
    has long answered it by then, and one that does not never will (the server would keep
    it open, its close stuck behind the unread frames)."""
    if websocket.client_state != WebSocketState.CONNECTED:
        return
    try:
        async with asyncio.timeout(timeout_s):
            await websocket.close(code=code, reason=reason)
    except TimeoutError:
        abort(websocket.scope)
        return
    except Exception:  # the peer may already be gone
        return
    if code in LIMIT_CLOSES:
        asyncio.get_running_loop().call_later(timeout_s, abort, websocket.scope)


async def _serve(
    rt: Runtime,
    channel: WebchatChannel,
    websocket: WebSocket,
    conn: Connection,
    claims: VisitorClaims,
    since: int,
) -> None:
    cursor = feed.Cursor(floor=since)
    pump = _Pump(rt, channel, conn, cursor)
    await pump.push(with_status=True)  # the replay, then where the conversation stands
    reader = asyncio.create_task(_read(rt, channel, websocket, conn, claims), name="webchat-read")
    writer = asyncio.create_task(pump.run(), name="webchat-pump")
    try:
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, writer):
            task.cancel()
        # Collect both, so neither leaves an unretrieved exception behind.
        await asyncio.gather(reader, writer, return_exceptions=True)
    for task in done:
        if not task.cancelled():
            task.result()  # re-raise Closed / disconnect / database errors


class _Pump:
    """Sends what the visitor has not seen yet whenever woken, and on every poll tick."""

    def __init__(
        self, rt: Runtime, channel: WebchatChannel, conn: Connection, cursor: feed.Cursor
    ) -> None:
        self.rt = rt
        self.channel = channel
        self.conn = conn
        self.cursor = cursor
        self.last_status: dict[str, Any] | None = None

    async def run(self) -> None:
        while True:
            await self.conn.wait(self.channel.config.poll_s)
            await self.push(with_status=True)

    async def push(self, *, with_status: bool) -> None:
        frames: list[dict[str, Any]] = []
        status: dict[str, Any] | None = None
        unshown: frozenset[int] = frozenset()
        after = self.cursor.floor
        # Short units of work, none held while sending: a slow client never holds the DB.
        while True:
            async with self.rt.db.session() as session:
                page = await feed.messages_after(
                    session,
                    self.conn.visitor_id,
                    after,
                    public_name=self.rt.policy.public_agent_name,
                )
                if with_status and not page.more:
                    status = await feed.status_frame(session, self.rt, self.conn.visitor_id)
            frames.extend(self.cursor.fresh(page.frames))
            unshown |= page.unshown
            if not page.more:
                break
            after = page.last_id
        shown: list[int] = []
        for frame in frames:
            await self.conn.send(frame)
            if frame["id"] in unshown:
                shown.append(frame["id"])
        if shown:
            # After the send, in its own short unit of work: only what really went out
            # counts as shown, and the write happens once per reply (then it is not unshown).
            async with self.rt.db.session() as session:
                await feed.mark_shown(session, shown, self.rt.now())
        if status is not None and status != self.last_status:
            self.last_status = status
            await self.conn.send(status)
        self.cursor.settle()


async def _read(
    rt: Runtime,
    channel: WebchatChannel,
    websocket: WebSocket,
    conn: Connection,
    claims: VisitorClaims,
) -> None:
    cfg = channel.config
    read_upto = 0
    while True:
        event = await websocket.receive()
        if event["type"] == "websocket.disconnect":
            return
        raw: str | bytes | None = event.get("text")
        if raw is None:
            raw = event.get("bytes") or b""
        size = len(raw.encode() if isinstance(raw, str) else raw)
        if size > cfg.max_frame_bytes:
            raise Closed(1009, f"frame too big (max {cfg.max_frame_bytes} bytes)")
        try:
            if raw_json_too_deep(raw):
                raise ValueError("nested too deep")
            frame = json.loads(raw)
        except ValueError:
            raise Closed(4400, "frames must be JSON objects") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise Closed(4400, "frames must be JSON objects with a type")
        kind = frame["type"]
        if kind == "message":
            await _on_message(rt, channel, conn, claims, frame)
        elif kind == "read":
            read_upto = await _on_read(rt, conn, frame, read_upto)
        elif kind == "rate":
            await _on_rate(rt, channel, conn, frame)
        elif kind == "typing":
            # Accepted and rate-limited; agents' consoles have no live typing feed yet.
            channel.hub.typing.allow(conn.visitor_id, cfg.typing_per_minute)
        # Unknown types are ignored so newer widgets keep working with older servers.


async def _on_message(
    rt: Runtime,
    channel: WebchatChannel,
    conn: Connection,
    claims: VisitorClaims,
    frame: dict[str, Any],
) -> None:
    cfg = channel.config
    client_id, text = frame.get("client_id"), frame.get("text")
    if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
        raise Closed(4400, "client_id must be 1-64 letters, digits, '-' or '_'")
    if not isinstance(text, str) or not text.strip():
        raise Closed(4400, "text must be a non-empty string")
    if len(text) > cfg.max_text_chars:
        raise Closed(1009, f"message too long (max {cfg.max_text_chars} characters)")
    if not channel.hub.messages.allow(conn.visitor_id, cfg.messages_per_minute):
        raise Closed(4429, f"too many messages (max {cfg.messages_per_minute} per minute)")
    msg = InboundMessage(
        channel="webchat",
        external_id=feed.external_id(conn.visitor_id, client_id),
        sender=Sender(
            external_id=conn.visitor_id,
            name=claims.name,
            email=claims.email,
            email_verified=False,  # typed into a form: never proof of owning the address
        ),
        text=text.strip(),
        received_at=rt.now(),
        channel_meta={"client_id": client_id}
        | ({"locale": claims.locale} if claims.locale else {}),
    )
    try:
        # Group commit with concurrent deliveries; acked below only once it is committed.
        result: IngestResult = await rt.group.submit(
            lambda s: ingest(s, rt, msg),
            key=f"webchat:{conn.visitor_id}",
            isolated=True,
            ahead=ingest_ahead(rt, msg.channel, msg.sender, msg.external_id),
        )
    except RouterError as exc:
        # Not stored, so no ack: the widget keeps the message and sends it again.
        await conn.send({"type": "error", "client_id": client_id, "detail": exc.detail})
        return
    # Only now, after the commit: an ack promises the message is stored.
    await conn.send(
        {
            "type": "ack",
            "client_id": client_id,
            "id": result.message_id,
            "conversation_id": result.conversation_id,
            "duplicate": result.duplicate,
        }
    )
    channel.hub.wake(conn.visitor_id)  # other tabs, and this socket's status and auto-reply


async def _on_rate(
    rt: Runtime, channel: WebchatChannel, conn: Connection, frame: dict[str, Any]
) -> None:
    """`{"type": "rate", "id": <the rating request's id>, "score": 1-5}`: a malformed frame
    closes with 4400; a request that is not this visitor's gets an error frame (the same one
    a missing id gets); otherwise `{"type": "rated", "id", "score", "duplicate"}`."""
    msg_id, score = frame.get("id"), frame.get("score")
    if not isinstance(msg_id, int) or isinstance(msg_id, bool) or msg_id <= 0:
        raise Closed(4400, "id must be the rating request's message id")
    if satisfaction_rules.valid_score(score) is None:
        raise Closed(4400, "score must be an integer from 1 to 5")
    if not channel.hub.messages.allow(conn.visitor_id, channel.config.messages_per_minute):
        raise Closed(
            4429, f"too many messages (max {channel.config.messages_per_minute} per minute)"
        )
    async with rt.db.session() as session:
        msg = await feed.owns_outbound(session, conn.visitor_id, msg_id)
        conv = await session.get(Conversation, msg.conversation_id) if msg else None
        if msg is None or msg.kind != "csat" or conv is None:
            rated = None
        else:
            rated = await satisfaction.record(
                session, rt, conv, score, channel="webchat", data={"message_id": msg_id}
            )
    if rated is None:
        await conn.send({"type": "error", "id": msg_id, "detail": "no such rating request"})
        return
    await conn.send(
        {"type": "rated", "id": msg_id, "score": rated.score, "duplicate": rated.duplicate}
    )
    channel.hub.wake(conn.visitor_id)


async def _on_read(rt: Runtime, conn: Connection, frame: dict[str, Any], read_upto: int) -> int:
    """Record once that the visitor has seen a reply (an event agents see on their stream)."""
    msg_id = frame.get("id")
    if not isinstance(msg_id, int) or isinstance(msg_id, bool) or msg_id <= read_upto:
        return read_upto
    async with rt.db.session() as session:
        msg = await feed.owns_outbound(session, conn.visitor_id, msg_id)
        if msg is None:
            return read_upto  # not theirs or not a reply: say nothing either way
        conv = await session.get(Conversation, msg.conversation_id)
        if conv is None:
            return read_upto
        await conv_event(
            session, "message.read", conv, data={"message_id": msg.id, "channel": "webchat"}
        )
    return msg_id
