"""The staff console in real headless Chromium: sign-in from an invitation, a web chat
conversation arriving live, claim and reply (the visitor's widget shows it), escalation
moving it from the first line's list to the clinicians', a crisis banner, the wallboard,
a first-line agent refused a second-line conversation by URL, CSRF and session expiry.

Screenshots of the real thing go to docs/screenshots/ (linked from the README).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect
from sqlalchemy import select

from channels.webchat import WebchatChannel, WebchatConfig
from models import Agent, Attachment, CallbackRequest, Conversation, Message
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.conftest import ADMIN, make_agent
from tests.e2e.conftest import serve_on
from tests.integration.channels.webchat.conftest import webchat_app
from tests.support.fakes import FakeClock
from tests.support.server import free_port

CONFIG = WebchatConfig(secret="e2e-secret", poll_s=0.3)
PASSWORD = "a long console password"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LIVE = 10_000  # ms: the event stream wakes on commit, else polls every 2 s


async def invitation(base: str, agent_id: int) -> str:
    async with httpx.AsyncClient(base_url=base) as api:
        r = await api.post(f"/api/v1/agents/{agent_id}/invitation", headers=ADMIN)
        assert r.status_code == 201, r.text
        return str(r.json()["url"]).replace("http://127.0.0.1:8000", base)


async def accept(base: str, agent_id: int) -> None:
    token = (await invitation(base, agent_id)).rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=base) as api:
        r = await api.post(
            "/console/api/invitations/accept", json={"token": token, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text


async def sign_in(page: Page, base: str, email: str) -> None:
    await page.goto(f"{base}/console/")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#signout")).to_be_visible()


async def visitor_writes(context: Any, base: str, text: str) -> Page:
    page = await context.new_page()
    await page.goto(f"{base}/webchat/demo")
    await page.get_by_role("button", name="Open chat").click()
    box = page.get_by_role("textbox", name="Your message")
    await box.fill(text)
    await box.press("Enter")
    await expect(page.locator("#careline-webchat .msg.in .tick").first).to_have_text("✓")
    return page


async def shot(page: Page, name: str, *, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / name), animations="disabled", full_page=full_page)


async def conv_with(rt: Runtime, tag: str | None = None) -> int:
    async with rt.db.session() as s:
        convs = list(await s.scalars(select(Conversation).order_by(Conversation.id)))
    for c in reversed(convs):
        if tag is None or tag in c.tags:
            return c.id
    raise AssertionError("no such conversation")


async def test_console_end_to_end(rt: Runtime, browser: Any, clock: FakeClock) -> None:
    rt.channels["webchat"] = WebchatChannel(CONFIG)
    # Nobody online: conversations wait in the queues for a claim (no auto-assignment).
    l1_id, _ = await make_agent(
        rt,
        name="Lucía",
        email="lucia@clinic.example",
        role="agent_l1",
        languages=["es", "en"],
        presence="away",
    )
    l2_id, _ = await make_agent(
        rt,
        name="Dr. Marta Ruiz",
        email="ruiz@clinic.example",
        role="agent_l2",
        languages=["es", "en"],
        presence="away",
    )
    sup_id, _ = await make_agent(
        rt, name="Sam", email="sam@clinic.example", role="supervisor", presence="offline"
    )
    errors: list[str] = []
    port = free_port()
    async with serve_on(webchat_app(rt), port) as base:
        # English screens for the assertions (the agents' first language would be Spanish).
        laptop = {"viewport": {"width": 1366, "height": 800}, "locale": "en-GB"}
        l1_ctx = await browser.new_context(**laptop)
        await l1_ctx.add_init_script("localStorage.setItem('careline.console.lang', 'en')")
        l2_ctx = await browser.new_context(viewport={"width": 1024, "height": 768})  # tablet
        await l2_ctx.add_init_script("localStorage.setItem('careline.console.lang', 'en')")
        sup_ctx = await browser.new_context(viewport={"width": 1600, "height": 900})
        await sup_ctx.add_init_script("localStorage.setItem('careline.console.lang', 'en')")
        l1 = await l1_ctx.new_page()
        l2 = await l2_ctx.new_page()
        sup = await sup_ctx.new_page()
        for p in (l1, l2, sup):
            p.on("pageerror", lambda exc: errors.append(str(exc)))
            # No request to any other host.
            p.on(
                "request",
                lambda req: (
                    errors.append(f"external request {req.url}")
                    if not req.url.startswith((base, "data:"))
                    else None
                ),
            )

        # The first-line agent sets her password from the invitation link, then signs in.
        await l1.goto(await invitation(base, l1_id))
        await l1.get_by_label("Password", exact=True).fill(PASSWORD)
        await l1.get_by_label("Password again").fill(PASSWORD)
        await l1.get_by_role("button", name="Set your password").click()
        await expect(l1.get_by_role("alert")).to_contain_text("lucia@clinic.example")
        await expect(l1.get_by_label("E-mail")).to_have_value("lucia@clinic.example")
        await l1.get_by_label("Password").fill(PASSWORD)
        await l1.get_by_role("button", name="Sign in").click()
        await expect(l1.locator("#signout")).to_be_visible()
        await expect(l1.locator("#unassigned")).to_have_text("Unassigned in my queues")
        # No wallboard for the first line.
        await expect(l1.get_by_role("link", name="Wallboard")).to_have_count(0)

        await accept(base, l2_id)
        await accept(base, sup_id)
        await sign_in(l2, base, "ruiz@clinic.example")
        await sign_in(sup, base, "sam@clinic.example")
        await sup.get_by_role("link", name="Wallboard").click()
        first_line_depth = sup.locator('[data-queue="first_line"] .tile').first.locator(".value")
        await expect(first_line_depth).to_have_text("0")

        # A visitor writes on the web chat: it arrives live in the first line's inbox.
        visitor_ctx = await browser.new_context(viewport={"width": 390, "height": 760})
        visitor = await visitor_writes(
            visitor_ctx, base, "Hola, quiero cambiar mi cita del jueves, por favor"
        )
        row = l1.locator("#unassigned-table tr.conv")
        await expect(row).to_have_count(1, timeout=LIVE)
        await expect(row).to_contain_text("webchat")
        await expect(row.locator(".sla")).to_contain_text("first response")
        await expect(first_line_depth).to_have_text("1", timeout=LIVE)
        conv_id = await conv_with(rt)

        # Claim and reply; the visitor's widget shows the reply.
        await shot(l1, "console-inbox.png")
        await row.get_by_role("link").click()
        await expect(l1.locator("#view-title")).to_have_text(f"#{conv_id}")
        await l1.locator("#act-claim").click()
        await expect(l1.locator("#conv-assignee")).to_contain_text("Lucía", timeout=LIVE)
        await l1.get_by_label("Your reply").fill("¡Hola! Claro, ¿qué día le viene bien?")
        await l1.locator("#send-reply").click()
        mine = l1.locator("#timeline .msg.out").last
        await expect(mine).to_contain_text("qué día le viene bien")
        await OutboxWorker(rt).run_once()
        await expect(visitor.locator("#careline-webchat")).to_contain_text(
            "qué día le viene bien", timeout=LIVE
        )
        await expect(mine.locator(".tick")).to_have_text("✓", timeout=LIVE)
        await expect(mine.locator(".tick")).to_have_attribute("class", "tick available")
        await l1.get_by_label("Your reply").fill("Le paso una nota al equipo")
        await l1.locator("#send-note").click()
        await expect(l1.locator("#timeline .msg.note")).to_contain_text("nota al equipo")
        await expect(l1.locator("#timeline .system").first).to_contain_text("Conversation created")
        await shot(l1, "console-conversation.png", full_page=True)

        # A cookie-authenticated write without the CSRF token is refused, even from the page.
        status = await l1.evaluate(
            "async (id) => (await fetch(`/api/v1/conversations/${id}/status`, {method: 'POST',"
            " headers: {'Content-Type': 'application/json'},"
            " body: JSON.stringify({status: 'pending'})})).status",
            conv_id,
        )
        assert status == 403

        # Escalation: it leaves the first line's lists and reaches the clinicians' list.
        await l1.locator("#act-escalate").click()
        await l1.get_by_label("Reason").fill("Pregunta sobre su medicación")
        await l1.get_by_role("button", name="Confirm").click()
        await expect(l1.locator("#conv-error")).to_be_visible(timeout=LIVE)
        await l1.get_by_role("link", name="Inbox", exact=True).click()
        await expect(l1.locator(f'tr.conv[data-id="{conv_id}"]')).to_have_count(0)
        await expect(l2.locator(f'#unassigned-table tr.conv[data-id="{conv_id}"]')).to_have_count(
            1, timeout=LIVE
        )

        # A crisis arrives: the clinician's banner appears and stays until someone claims it.
        crisis_ctx = await browser.new_context()
        await visitor_writes(crisis_ctx, base, "ya no aguanto más, quiero quitarme la vida")
        banner = l2.locator("#crisis")
        await expect(banner).to_be_visible(timeout=LIVE)
        crisis_id = await conv_with(rt, "crisis")
        await expect(banner).to_contain_text(f"#{crisis_id}")
        await expect(banner).to_contain_text("ago")
        await expect(l2.locator("#unassigned-table tr.conv").first).to_have_attribute(
            "data-id", str(crisis_id)
        )  # crisis rows sort first
        await expect(sup.locator("#crisis")).to_contain_text(f"#{crisis_id}", timeout=LIVE)
        await expect(l1.locator("#crisis")).to_be_hidden()
        await shot(l2, "console-crisis-banner.png")

        # The first line cannot open it by URL.
        await l1.goto(f"{base}/console/#/c/{crisis_id}")
        await expect(l1.locator("#conv-error")).to_contain_text("not visible to you")

        await expect(sup.locator(".wb-grid .crises")).to_contain_text(f"#{crisis_id}", timeout=LIVE)
        await banner.get_by_role("button", name="Claim").click()
        await expect(banner).to_be_hidden(timeout=LIVE)
        await expect(sup.locator("#crisis")).to_be_hidden(timeout=LIVE)
        crises = sup.locator(".wb-grid .crises")
        await expect(crises).to_contain_text("Dr. Marta Ruiz", timeout=LIVE)
        second_line_depth = sup.locator('[data-queue="second_line"] .tile').first.locator(".value")
        await expect(second_line_depth).to_have_text("1", timeout=LIVE)  # the escalated one
        await expect(first_line_depth).to_have_text("0", timeout=LIVE)
        await shot(sup, "console-wallboard.png")

        # Presence from the console.
        await l1.get_by_label("Presence").select_option("online")
        await expect(sup.locator(f'tr[data-agent="{l1_id}"] .presence')).to_have_text(
            "Online", timeout=LIVE
        )
        async with rt.db.session() as s:
            assert (await s.get(Agent, l1_id)).presence == "online"  # type: ignore[union-attr]

        # Session expiry: 31 idle minutes later the next request asks for a new sign-in.
        clock.advance(minutes=31)
        await l1.get_by_role("link", name="Inbox", exact=True).click()
        await expect(l1.get_by_role("alert")).to_contain_text("session ended", timeout=LIVE)
        await expect(l1.get_by_role("button", name="Sign in")).to_be_visible()

        for ctx in (l1_ctx, l2_ctx, sup_ctx, visitor_ctx, crisis_ctx):
            await ctx.close()
    assert errors == []


async def test_console_speaks_the_agents_language(rt: Runtime, browser: Any) -> None:
    agent_id, _ = await make_agent(
        rt, name="Олег", email="oleg@clinic.example", role="agent_l1", languages=["ru"]
    )
    async with serve_on(webchat_app(rt), free_port()) as base:
        await accept(base, agent_id)
        ctx = await browser.new_context(locale="en-US")
        page = await ctx.new_page()
        await page.goto(f"{base}/console/")
        await page.get_by_label("E-mail").fill("oleg@clinic.example")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.keyboard.press("Enter")
        await expect(page.locator("#view-title")).to_have_text("Входящие")
        await expect(page.locator("html")).to_have_attribute("lang", "ru")
        await page.get_by_label("Язык").select_option("es")
        await expect(page.locator("#view-title")).to_have_text("Bandeja")
        await ctx.close()


async def test_the_timeline_shows_calls_callbacks_and_attachments_on_a_tablet(
    rt: Runtime, browser: Any
) -> None:
    agent_id, _ = await make_agent(
        rt, name="Lucía", email="lucia@clinic.example", role="agent_l1", presence="away"
    )
    async with serve_on(webchat_app(rt), free_port()) as base:
        async with httpx.AsyncClient(base_url=base) as api:
            r = await api.post(
                "/api/v1/inbound",
                json={
                    "contact": {"external_id": "ana", "name": "Ana García"},
                    "message": {"external_id": "m1", "text": "Quiero cambiar mi cita"},
                },
                headers=ADMIN,
            )
            conv_id = r.json()["conversation_id"]
        now = rt.now()
        async with rt.db.session() as s:
            conv = await s.get(Conversation, conv_id)
            assert conv is not None
            call = Message(
                conversation_id=conv_id,
                direction="in",
                channel="calls",
                kind="call",
                text="",
                channel_meta={"call_status": "missed", "duration_s": 0},
            )
            doc = Message(conversation_id=conv_id, direction="in", channel="app", text="mi receta")
            s.add_all([call, doc])
            await s.flush()
            s.add(
                Attachment(
                    message_id=doc.id, url="https://f.example/r.pdf", kind="file", name="receta.pdf"
                )
            )
            s.add(
                CallbackRequest(
                    conversation_id=conv_id,
                    contact_id=conv.contact_id,
                    phone="+34600000000",
                    first_call_at=now,
                    last_call_at=now,
                    last_call_status="missed",
                )
            )
        await accept(base, agent_id)
        ctx = await browser.new_context(viewport={"width": 768, "height": 1024}, has_touch=True)
        await ctx.add_init_script("localStorage.setItem('careline.console.lang', 'en')")
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await sign_in(page, base, "lucia@clinic.example")
        await page.goto(f"{base}/console/#/c/{conv_id}")
        timeline = page.locator("#timeline")
        await expect(timeline.locator(".msg .call")).to_contain_text("missed")
        link = timeline.get_by_role("link", name="receta.pdf")
        await expect(link).to_have_attribute(
            "href", re.compile(r"^/api/v1/attachments/\d+/content$")
        )
        callback = timeline.locator(".callback")
        await expect(callback).to_contain_text("+34600000000: open")
        await callback.get_by_label("Outcome").select_option("no_answer")
        await callback.get_by_role("button", name="Record").click()
        await expect(timeline.locator(".callback")).to_contain_text("no_answer", timeout=LIVE)
        # The contact panel: name, identities and (on a tablet) below the timeline.
        panel = page.get_by_role("complementary", name="Contact")
        await expect(panel).to_contain_text("Ana García")
        box_tl = await timeline.bounding_box()
        box_panel = await panel.bounding_box()
        assert box_tl is not None
        assert box_panel is not None
        assert box_panel["y"] > box_tl["y"]
        # Keyboard: Escape closes an action form.
        await page.locator("#act-escalate").click()
        await expect(page.get_by_label("Reason")).to_be_focused()
        await page.keyboard.press("Escape")
        await expect(page.get_by_label("Reason")).to_have_count(0)
        await ctx.close()
        assert errors == []
