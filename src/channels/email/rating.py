"""E-mail's satisfaction request: a signed one-click link per score, and the page it opens.

A link is `PUBLIC_URL/email/rate?token=<conversation>.<score>.<expiry>.<hex HMAC>`, signed
with `signing.rating_key` (derived from WEBHOOK_SECRET with its own label). Opening it
records the score through `router.flows.satisfaction.record` (first answer wins) and shows a
small confirmation page. A forged or malformed token answers 400, an expired one 410, never
a 500; a token names one conversation and one score, so it cannot rate anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from channels.signing import rating_key
from models import Conversation
from router.api.deps import RuntimeDep, SessionDep
from router.decide import satisfaction as rules
from router.errors import NotFound, RouterError
from router.flows import satisfaction
from router.runtime import Runtime

api_router = APIRouter(tags=["email channel"])

TTL_S = 30 * 86400  # a link works for 30 days after the conversation was resolved
_TOKEN = re.compile(r"^(\d{1,18})\.([1-5])\.(\d{1,12})\.([0-9a-f]{64})$")
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


class BadRatingToken(RouterError):
    status_code = 400
    title = "Bad request"


class ExpiredRatingToken(RouterError):
    status_code = 410
    title = "Link expired"


@dataclass(frozen=True)
class RatingClaims:
    conversation_id: int
    score: int
    expires_at: int


def _mac(key: str, payload: str) -> str:
    return hmac.new(key.encode(), f"csat.{payload}".encode(), hashlib.sha256).hexdigest()


def mint(key: str, conversation_id: int, score: int, expires_at: int) -> str:
    payload = f"{conversation_id}.{score}.{expires_at}"
    return f"{payload}.{_mac(key, payload)}"


def verify(key: str, token: str, now: datetime) -> RatingClaims:
    """The token's claims; `BadRatingToken` (400) when malformed or forged, checked before
    `ExpiredRatingToken` (410), so an expired forgery is still just a forgery."""
    m = _TOKEN.match(token)
    if m is None:
        raise BadRatingToken("this rating link is not valid")
    conv_id, score, exp, mac = m.groups()
    if not hmac.compare_digest(_mac(key, f"{conv_id}.{score}.{exp}").encode(), mac.encode()):
        raise BadRatingToken("this rating link is not valid")
    if int(exp) < now.timestamp():
        raise ExpiredRatingToken("this rating link has expired")
    return RatingClaims(int(conv_id), int(score), int(exp))


def links(settings: Any, key: str, conversation_id: int, now: datetime) -> dict[int, str]:
    base = str(settings.public_url).rstrip("/")
    exp = int(now.timestamp()) + TTL_S
    return {
        n: f"{base}/email/rate?token={mint(key, conversation_id, n, exp)}"
        for n in range(rules.MIN_SCORE, rules.MAX_SCORE + 1)
    }


def request_text(language: str | None, urls: dict[int, str]) -> str:
    lines = [rules.text("rate", language), ""]
    lines += [f"{n} – {url}" for n, url in sorted(urls.items())]
    return "\n".join(lines)


async def ask(session: AsyncSession, rt: Runtime, conv: Conversation) -> None:
    """The `on_resolved` hook: a mail with one link per score, when the conversation
    replies by e-mail and a rating key exists."""
    key = rating_key(rt.settings)
    if key is None:
        return
    urls = links(rt.settings, key, conv.id, rt.now())
    await satisfaction.ask(session, rt, conv, "email", request_text(conv.language, urls))


def _page(language: str | None, score: int) -> str:
    thanks = html.escape(rules.text("thanks", language))
    stars = "★" * score + "☆" * (rules.MAX_SCORE - score)
    lang = html.escape((language or "en")[:8])
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{thanks}</title></head>"
        '<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;'
        'padding:0 1rem;text-align:center">'
        f'<h1 style="font-size:1.4rem">{thanks}</h1>'
        f'<p style="font-size:2rem" aria-label="{score}/5">{stars}</p></body></html>'
    )


@api_router.get("/email/rate", include_in_schema=False, response_model=None)
async def rate(
    rt: RuntimeDep, session: SessionDep, token: str = Query(default="", max_length=200)
) -> Response:
    """The one-click link: records the score (the first answer wins; opening it again, or
    another score's link, changes nothing) and shows the score the conversation has."""
    key = rating_key(rt.settings)
    if key is None:
        raise NotFound("e-mail rating links are not configured")
    claims = verify(key, token, rt.now())
    conv = await session.get(Conversation, claims.conversation_id)
    if conv is None:
        raise NotFound("this conversation no longer exists")
    rated = await satisfaction.record(session, rt, conv, claims.score, channel="email")
    return HTMLResponse(_page(conv.language, rated.score), headers=_HEADERS)
