"""E-mail's rating request on resolution: one signed link per score, each a one-click GET
that records the score and shows a confirmation page; forged, tampered and expired links
answer 4xx and store nothing."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from channels.email import rating
from channels.signing import rating_key
from models import Conversation, Event
from router.decide.policy import SatisfactionPolicy
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.conftest import ADMIN
from tests.integration.channels.email.conftest import Recorder, post_mail
from tests.integration.channels.email.support import mail
from tests.support.factories import count_messages, count_rows

LINK = re.compile(r"^([1-5]) – (\S+/email/rate\?token=\S+)$", re.M)


async def drain(rt: Runtime) -> None:
    worker = OutboxWorker(rt)
    while await worker.run_once():
        pass


async def status(client: httpx.AsyncClient, conv_id: int, value: str) -> None:
    r = await client.post(
        f"/api/v1/conversations/{conv_id}/status", json={"status": value}, headers=ADMIN
    )
    assert r.status_code == 200, r.text


async def mail_in(client: httpx.AsyncClient, **kw: Any) -> int:
    r = await post_mail(client, mail(**kw))
    assert r.status_code == 200, r.text
    return int(r.json()["conversation_id"])


def links_in(recorder: Recorder) -> dict[int, str]:
    for _, _, sent in recorder.messages:
        body = sent.get_body(("plain",))
        assert body is not None
        found = dict(LINK.findall(body.get_content().replace("\r\n", "\n")))
        if found:
            assert sent["Auto-Submitted"] == "auto-replied"  # RFC 3834: no out-of-office loops
            return {int(k): v for k, v in found.items()}
    return {}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_resolve_mails_one_link_per_score_and_a_click_records_it(
    email_client: httpx.AsyncClient, email_rt: Runtime, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    rt = email_rt
    conv_id = await mail_in(email_client)
    await status(email_client, conv_id, "resolved")
    await drain(rt)
    links = links_in(recorder)
    assert sorted(links) == [1, 2, 3, 4, 5]
    assert all(u.startswith(rt.settings.public_url) for u in links.values())

    page = await email_client.get(path_of(links[4]))
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "Gracias" in page.text or "Thank you" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    # Opening it again, or another score's link: the first answer stays, no second event.
    assert (await email_client.get(path_of(links[4]))).status_code == 200
    other = await email_client.get(path_of(links[1]))
    assert other.status_code == 200
    assert 'aria-label="4/5"' in other.text
    async with rt.db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        assert conv.csat == 4
        [event] = list(await s.scalars(select(Event).where(Event.type == "conversation.rated")))
        assert (event.data or {})["channel"] == "email"

    # Reopened and resolved again: no second request.
    await status(email_client, conv_id, "open")
    await status(email_client, conv_id, "resolved")
    assert await count_messages(rt, conversation_id=conv_id, kind="csat") == 1


async def test_forged_tampered_and_expired_links_are_4xx(
    email_client: httpx.AsyncClient, email_rt: Runtime
) -> None:
    rt = email_rt
    conv_id = await mail_in(email_client)
    await status(email_client, conv_id, "resolved")
    key = rating_key(rt.settings)
    assert key is not None
    now = rt.now()
    good = rating.mint(key, conv_id, 5, int(now.timestamp()) + 60)
    payload, _, mac = good.rpartition(".")
    cases = {
        "": 400,
        "garbage": 400,
        "1.2.3": 400,
        rating.mint("another key", conv_id, 5, int(now.timestamp()) + 60): 400,
        # The score changed under the same signature.
        good.replace(f"{conv_id}.5.", f"{conv_id}.1.", 1): 400,
        f"{payload}.{mac[:-1]}": 400,
        rating.mint(key, conv_id, 5, int((now - timedelta(seconds=1)).timestamp())): 410,
        rating.mint(key, conv_id, 7, int(now.timestamp()) + 60): 400,  # not a score
        rating.mint(key, 999_999, 5, int(now.timestamp()) + 60): 404,
        "x" * 500: 422,  # longer than any token
    }
    for token, code in cases.items():
        r = await email_client.get("/email/rate", params={"token": token})
        assert r.status_code == code, (token, r.text)
    assert await count_rows(rt, Event, Event.type == "conversation.rated") == 0
    # The link outlives a clock step inside its lifetime.
    rt.clock.advance(days=29)  # type: ignore[attr-defined]
    r = await email_client.get(
        "/email/rate",
        params={"token": rating.mint(key, conv_id, 3, int(now.timestamp()) + rating.TTL_S)},
    )
    assert r.status_code == 200


async def test_a_crisis_mail_is_not_asked_unless_the_policy_says_so(
    email_client: httpx.AsyncClient, email_rt: Runtime, smtp_server: tuple[Recorder, int]
) -> None:
    rt = email_rt
    body = "Ya no puedo más, quiero suicidarme esta noche, tengo las pastillas"
    conv_id = await mail_in(email_client, body=body)
    await status(email_client, conv_id, "resolved")
    assert await count_messages(rt, conversation_id=conv_id, kind="csat") == 0

    rt.policy = rt.policy.model_copy(
        update={"satisfaction": SatisfactionPolicy(ask_after_crisis=True)}
    )
    later = await mail_in(
        email_client, body=body, message_id="<m2@correo.example>", sender="Eva <eva@b.example>"
    )
    await status(email_client, later, "resolved")
    assert await count_messages(rt, conversation_id=later, kind="csat") == 1


async def test_without_a_signing_key_no_links_are_sent(
    email_client: httpx.AsyncClient, email_rt: Runtime
) -> None:
    rt = email_rt
    conv_id = await mail_in(email_client)
    rt.settings = rt.settings.model_copy(update={"webhook_secret": None})
    await status(email_client, conv_id, "resolved")
    assert await count_messages(rt, conversation_id=conv_id, kind="csat") == 0
    assert (await email_client.get("/email/rate", params={"token": "1.2.3"})).status_code == 404
