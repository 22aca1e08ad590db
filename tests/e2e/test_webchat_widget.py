"""The widget in real headless Chromium: write, get a reply, reload, survive a restart, rate
the help once the conversation is resolved."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect
from sqlalchemy import func, select

from channels.webchat import WebchatChannel, WebchatConfig
from models import Conversation, Message
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.conftest import auth, make_agent
from tests.e2e.conftest import serve_on
from tests.integration.channels.webchat.conftest import webchat_app
from tests.support.server import free_port
from tests.support.waits import wait_for

CONFIG = WebchatConfig(secret="e2e-secret", poll_s=0.3)


async def agent_reply(base: str, token: str, text: str) -> None:
    async with httpx.AsyncClient(base_url=base) as api:
        convs = await api.get("/api/v1/conversations", headers=auth(token))
        conv_id = convs.json()["items"][0]["id"]
        r = await api.post(
            f"/api/v1/conversations/{conv_id}/messages", json={"text": text}, headers=auth(token)
        )
        assert r.status_code == 201, r.text


async def resolve(base: str, token: str) -> int:
    async with httpx.AsyncClient(base_url=base) as api:
        convs = await api.get("/api/v1/conversations", headers=auth(token))
        conv_id = int(convs.json()["items"][0]["id"])
        r = await api.post(
            f"/api/v1/conversations/{conv_id}/status",
            json={"status": "resolved"},
            headers=auth(token),
        )
        assert r.status_code == 200, r.text
        return conv_id


def widget(page: Page) -> Any:
    return page.locator("#careline-webchat")


async def test_visitor_chats_reloads_and_survives_a_restart(
    rt: Runtime, browser: Any, tmp_path: Path
) -> None:
    rt.channels["webchat"] = WebchatChannel(CONFIG)
    # The widget shows the policy's public name, never the internal display name.
    rt.policy = rt.policy.model_copy(update={"public_names": {"ana@clinic.example": "Ana"}})
    _, token = await make_agent(
        rt, name="Ana (bookings)", email="ana@clinic.example", role="agent_l1", presence="offline"
    )
    port = free_port()
    errors: list[str] = []

    # A phone-sized screen, Spanish browser: the labels follow unless the page says otherwise.
    context = await browser.new_context(
        viewport={"width": 390, "height": 760}, locale="es-ES", is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    async with serve_on(webchat_app(rt), port) as base:
        await page.goto(f"{base}/webchat/demo")
        bubble = page.get_by_role("button", name="Open chat")  # the demo page is lang=en
        await expect(bubble).to_have_attribute("aria-expanded", "false")
        await bubble.click()
        box = page.get_by_role("textbox", name="Your message")
        await expect(box).to_be_focused()

        # Markup typed by a visitor stays text.
        await box.fill("Hola <img src=x onerror=alert(1)> necesito una cita")
        await box.press("Enter")
        log = page.get_by_role("log")
        mine = log.locator(".msg.in").first
        await expect(mine).to_contain_text("<img src=x onerror=alert(1)>")
        await expect(mine.locator(".tick")).to_have_text("✓")
        assert await log.locator("img").count() == 0
        # The automatic acknowledgement and the queue status.
        await expect(log.locator(".msg.out").first).to_be_visible()
        await expect(page.get_by_role("status")).to_contain_text("queue")

        await agent_reply(base, token, "¡Hola! Soy Ana. ¿Qué día le viene bien?")
        await OutboxWorker(rt).run_once()
        await expect(log).to_contain_text("Soy Ana")
        await expect(page.get_by_role("status")).to_contain_text("Ana")
        shot = tmp_path / "webchat-phone.png"
        await page.screenshot(path=str(shot), animations="disabled")
        if artifacts := os.environ.get("CARELINE_E2E_ARTIFACTS"):
            await page.screenshot(path=str(Path(artifacts, shot.name)), animations="disabled")

        # Reload: same visitor (token in localStorage), whole history replayed.
        await page.reload()
        await page.get_by_role("button", name="Open chat").click()
        await expect(log.locator(".msg")).to_have_count(3)
        await expect(log.locator(".msg").last).to_contain_text("Soy Ana")

        # Escape closes the panel and gives focus back to the bubble.
        await page.keyboard.press("Escape")
        await expect(page.get_by_role("button", name="Open chat")).to_be_focused()
        await page.get_by_role("button", name="Open chat").click()

    # The server is down: the widget says so, and keeps what the visitor writes.
    await expect(page.get_by_role("status")).to_contain_text("Reconnecting")
    await box.fill("¿Siguen ahí?")
    await box.press("Enter")
    await expect(log.locator(".msg.in").last.locator(".tick")).to_have_text("◷")

    # A new process (fresh hub), same database and secret; a reply was written meanwhile.
    rt.channels["webchat"] = WebchatChannel(CONFIG)
    async with serve_on(webchat_app(rt), port) as base:
        await agent_reply(base, token, "Sí, aquí seguimos.")
        await expect(log).to_contain_text("Sí, aquí seguimos.", timeout=15_000)
        await expect(log.locator(".msg.in").last.locator(".tick")).to_have_text("✓")
        await expect(log.locator(".msg")).to_have_count(5)
        async with rt.db.session() as s:
            n = await s.scalar(
                select(func.count()).select_from(Message).where(Message.text == "¿Siguen ahí?")
            )
        assert n == 1, "the message typed while offline must be stored exactly once"

        # Resolved: the widget shows the rating request with five buttons; the visitor
        # clicks 4 and the score reaches the conversation.
        conv_id = await resolve(base, token)
        rating = log.get_by_role("group", name="Your rating")
        await expect(rating.get_by_role("button")).to_have_count(5, timeout=15_000)
        await rating.get_by_role("button", name="4", exact=True).click()
        await expect(rating.get_by_role("button", name="4", exact=True)).to_have_attribute(
            "aria-pressed", "true"
        )
        await expect(log).to_contain_text("Thank you for your rating!")
        await expect(rating.get_by_role("button", name="1", exact=True)).to_be_disabled()

        async def rated() -> int | None:
            async with rt.db.session() as s:
                conv = await s.get(Conversation, conv_id)
                return conv.csat if conv else None

        assert await wait_for(rated, what="the score stored") == 4
        # A reload shows the rating as given, not five fresh buttons.
        await page.reload()
        await page.get_by_role("button", name="Open chat").click()
        pressed = log.get_by_role("group", name="Your rating").locator("[aria-pressed=true]")
        await expect(pressed).to_have_text("4")
    await context.close()
    assert errors == []


async def test_replaying_a_long_outbox_stays_under_the_rate_limit(
    rt: Runtime, browser: Any
) -> None:
    """25 messages left unacknowledged in localStorage go out one per ack and at most 15 a
    minute: the server (20 a minute) never closes the socket with 4429."""
    rt.channels["webchat"] = WebchatChannel(CONFIG)
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    closes: list[int] = []
    port = free_port()
    async with serve_on(webchat_app(rt), port) as base:
        outbox = [{"client_id": f"q{i}", "text": f"queued {i}"} for i in range(25)]
        await context.add_init_script(
            f"localStorage.setItem({json.dumps('careline.webchat:' + base)},"
            f" {json.dumps(json.dumps({'outbox': outbox}))});"
        )
        page.on("websocket", lambda ws: ws.on("close", lambda _ws: closes.append(1)))

        async def stored() -> int:
            async with rt.db.session() as s:
                n = await s.scalar(
                    select(func.count()).select_from(Message).where(Message.text.like("queued %"))
                )
            return int(n or 0)

        await page.goto(f"{base}/webchat/demo")
        for _ in range(100):
            if await stored() >= 15:
                break
            await page.wait_for_timeout(100)
        await page.wait_for_timeout(1500)  # what an unpaced replay would send meanwhile
        assert await stored() == 15
        assert closes == [], "the socket was closed (4429) by the replay"
        # The rest waits in the outbox, shown as sending.
        await page.get_by_role("button", name="Open chat").click()
        await expect(page.locator("#careline-webchat .msg.in")).to_have_count(25)
    await context.close()
    assert errors == []
