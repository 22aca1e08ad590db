"""The support desk in the staff console, in real headless Chromium: search by another
inflection of a word (and never a second-line conversation for the first line), tags with
the crisis warning, a canned reply rendered into the reply box and sent, the supervisors'
canned-reply management and the reports page with its server-rendered charts and CSV links.

The screenshot of the search results goes to docs/screenshots/ (linked from the README).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.async_api import Page, expect

from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent
from tests.e2e.conftest import serve_on
from tests.e2e.test_console import LIVE, accept, shot, sign_in
from tests.integration.channels.webchat.conftest import webchat_app
from tests.support.server import free_port

BOOKING = "Hola, quiero cambiar mi cita del jueves por la tarde"
CLINICAL = "Desde el martes me duele el pecho y no sé si tomar la medicación antes de la cita"

FILLERS = [
    ("Jorge Pérez", "¿Puedo pedir cita para el lunes por la mañana?"),
    ("Carmen López", "Tengo una cita el viernes y no podré ir"),
    ("Luis Martín", "Quería confirmar las citas de mis dos hijos"),
    ("Elena Sanz", "No me llegó el recordatorio de la cita"),
]


async def inbound(
    api: httpx.AsyncClient, text: str, user: str, name: str, msg: str = "m0"
) -> dict[str, Any]:
    r = await api.post(
        "/api/v1/inbound",
        json={
            "contact": {"external_id": user, "name": name},
            "message": {"external_id": f"{user}-{msg}", "text": text},
        },
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    conv = await api.get(f"/api/v1/conversations/{r.json()['conversation_id']}", headers=ADMIN)
    return dict(conv.json())


def watch(page: Page, base: str, errors: list[str]) -> None:
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "request",
        lambda req: (
            errors.append(f"external request {req.url}")
            if not req.url.startswith((base, "data:"))
            else None
        ),
    )


async def test_search_tags_canned_replies_and_reports(rt: Runtime, browser: Any) -> None:
    l1_id, l1_token = await make_agent(
        rt,
        name="Lucía",
        email="lucia@clinic.example",
        role="agent_l1",
        languages=["es", "en"],
        presence="away",
    )
    sup_id, sup_token = await make_agent(
        rt, name="Sam", email="sam@clinic.example", role="supervisor", presence="offline"
    )
    errors: list[str] = []
    async with serve_on(webchat_app(rt), free_port()) as base:
        async with httpx.AsyncClient(base_url=base) as api:
            booking = await inbound(api, BOOKING, "ana", "Ana García")
            clinical = await inbound(api, CLINICAL, "marta", "Marta Secreta")
            assert booking["queue"] == "first_line"
            assert clinical["queue"] == "second_line"
            # Enough hits for a second page (20 a page), from other patients.
            for i in range(1, 21):
                name, text = FILLERS[i % len(FILLERS)]
                other = await inbound(api, text, f"p{i}", f"{name} {i}")
                assert other["queue"] == "first_line"
            # A supervisor prepares a canned reply (through the API, with a bearer token).
            r = await api.post(
                "/api/v1/canned-replies",
                json={
                    "title": "Cambio de cita",
                    "body": "Hola {first_name}, con gusto le cambio la cita ({reference}).",
                    "language": "es",
                },
                headers=auth(sup_token),
            )
            assert r.status_code == 201, r.text
        await accept(base, l1_id)
        await accept(base, sup_id)

        ctx = await browser.new_context(viewport={"width": 1366, "height": 800}, locale="en-GB")
        await ctx.add_init_script("localStorage.setItem('careline.console.lang', 'en')")
        l1 = await ctx.new_page()
        watch(l1, base, errors)
        await sign_in(l1, base, "lucia@clinic.example")

        # Search from the header by another inflection: "citas" finds "cita". Only the
        # first-line conversation: the clinical one says "cita" too, but she may not read it.
        box = l1.get_by_role("searchbox", name="Search")
        await box.fill("cit")
        # The header is re-drawn on every route and presence event: a half-typed search (and
        # its focus) must survive it (it used to be replaced by an empty box mid-typing).
        await l1.evaluate("() => window.dispatchEvent(new HashChangeEvent('hashchange'))")
        await expect(box).to_have_value("cit")
        await expect(box).to_be_focused()
        await box.fill("citas")
        await l1.keyboard.press("Enter")
        await expect(l1.locator("#view-title")).to_have_text("Search: citas")
        hits = l1.locator("#search-results .hit")
        await expect(hits).to_have_count(20)
        await expect(l1.locator("#search-count")).to_have_text("Results shown: 20.")
        await shot(l1, "console-search.png")
        # The next page, with the cursor: appended, and no further page.
        # Her token's own search, every page: what the console must show, no more, no less.
        expected: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=base) as api:
            cursor = None
            while True:
                params = {"q": "citas", **({"cursor": cursor} if cursor else {})}
                page = (
                    await api.get("/api/v1/search", params=params, headers=auth(l1_token))
                ).json()
                expected += page["items"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
        assert 20 < len(expected) <= 40, expected
        assert clinical["id"] not in {h["conversation_id"] for h in expected}
        await l1.get_by_role("button", name="More results").click()
        await expect(hits).to_have_count(len(expected))
        await expect(l1.get_by_role("button", name="More results")).to_be_hidden()
        await expect(l1.locator("#search-count")).to_have_text(f"Results shown: {len(expected)}.")
        ana = l1.locator(f'.hit[data-conversation="{booking["id"]}"][data-kind="message"]')
        await expect(ana.first).to_contain_text("Ana García")
        await expect(ana.locator(".snippet", has_text=BOOKING)).to_have_count(1)
        await expect(l1.locator(f'.hit[data-conversation="{clinical["id"]}"]')).to_have_count(0)
        # Nothing of the clinical conversation, whatever the word.
        await l1.get_by_role("searchbox", name="Search").fill("pecho")
        await l1.get_by_role("button", name="Search").click()
        await expect(l1.locator("#search-count")).to_have_text("No results you may see.")
        await expect(l1.locator("#search-results .hit")).to_have_count(0)
        # Two words, each by another form: only hers; open it.
        await l1.get_by_role("searchbox", name="Search").fill("citas jueves")
        await l1.keyboard.press("Enter")
        await expect(hits).to_have_count(1)
        await l1.locator(f'.hit[data-conversation="{booking["id"]}"] a').first.click()
        await expect(l1.locator("#view-title")).to_have_text(f"#{booking['id']}")

        # Tags: crisis says what it does and needs a reason; an ordinary tag is added.
        await l1.locator("#act-claim").click()
        await expect(l1.locator("#conv-assignee")).to_contain_text("Lucía", timeout=LIVE)
        await l1.get_by_role("button", name="Tags").click()
        tag = l1.get_by_label("Tag", exact=True)
        await expect(tag).to_be_focused()
        await tag.fill("crisis")
        await expect(l1.locator("#tag-crisis")).to_be_visible()
        await expect(l1.locator("#tag-crisis")).to_contain_text("alerts the supervisor")
        await l1.get_by_role("button", name="Add tag").click()
        await expect(l1.locator("#tag-msg")).to_contain_text("Give a reason")
        await tag.fill("reagendar")
        await expect(l1.locator("#tag-crisis")).to_be_hidden()
        await l1.get_by_label("Reason for the change").fill("Pide otro día")
        await tag.press("Enter")
        await expect(l1.locator(".conv-head .tags")).to_contain_text("reagendar", timeout=LIVE)
        tagged = l1.locator('#timeline .system[data-event="conversation.tagged"]')
        await expect(tagged).to_contain_text("Tags changed")
        await expect(tagged).to_contain_text("+reagendar")
        await expect(tagged).to_contain_text("Pide otro día")

        # A canned reply, rendered for this conversation, goes into the reply box and is sent.
        await l1.get_by_label("Canned reply").select_option(label="Cambio de cita (es)")
        await l1.get_by_role("button", name="Insert").click()
        box = l1.get_by_label("Your reply")
        await expect(box).to_have_value(
            f"Hola Ana, con gusto le cambio la cita (#{booking['id']})."
        )
        await expect(box).to_be_focused()
        await l1.locator("#send-reply").click()
        await expect(l1.locator("#timeline .msg.out").last).to_contain_text(
            "con gusto le cambio la cita"
        )
        # No reports nor canned-reply management for the first line.
        await expect(l1.get_by_role("link", name="Reports")).to_have_count(0)
        await expect(l1.get_by_role("link", name="Canned replies")).to_have_count(0)

        # The supervisor: reports with the server's SVG charts and CSV links.
        sup_ctx = await browser.new_context(viewport={"width": 1600, "height": 900})
        await sup_ctx.add_init_script("localStorage.setItem('careline.console.lang', 'en')")
        sup = await sup_ctx.new_page()
        watch(sup, base, errors)
        await sign_in(sup, base, "sam@clinic.example")
        await sup.get_by_role("link", name="Reports").click()
        await expect(sup.locator("#view-title")).to_have_text("Reports")
        # The queues are known once the session has started (the view is drawn again then).
        await expect(sup.locator('#r-queue option[value="first_line"]')).to_have_count(1)
        await sup.get_by_label("Channel").select_option("app")
        await sup.get_by_role("button", name="Apply").click()
        volume = sup.locator('[data-report="volume"]')
        chart = volume.get_by_role("img", name="Chart: Volume")
        await expect(chart).to_have_attribute(
            "src", re.compile(r"^/api/v1/reports/volume\?.*channel=app.*format=svg")
        )
        await sup.wait_for_function(
            "() => { const i = document.querySelector('[data-report=volume] img');"
            " return i && i.complete && i.naturalWidth > 0; }",
            timeout=LIVE,
        )
        csv = volume.get_by_role("link", name="Download Volume (CSV)")
        href = await csv.get_attribute("href")
        assert href is not None
        assert href.startswith("/api/v1/reports/volume?")
        assert "format=csv" in href
        assert "channel=app" in href
        got = await sup.evaluate(
            "async (u) => { const r = await fetch(u); return [r.status,"
            " r.headers.get('content-type'), await r.text()]; }",
            href,
        )
        assert got[0] == 200, got
        assert got[1].startswith("text/csv"), got
        await expect(sup.locator(".report img.chart")).to_have_count(5)

        # Canned-reply management: edit, create, delete.
        sup.on("dialog", lambda d: d.accept())
        await sup.get_by_role("link", name="Canned replies").click()
        row = sup.locator("#canned-table tbody tr")
        await expect(row).to_have_count(1)
        await sup.get_by_role("button", name="Edit Cambio de cita").click()
        await sup.get_by_label("Title").fill("Cambio de cita (tarde)")
        await sup.get_by_role("button", name="Save").click()
        await expect(row.first).to_contain_text("Cambio de cita (tarde)")
        await sup.get_by_role("button", name="New canned reply").click()
        await sup.get_by_label("Title").fill("Factura")
        await sup.get_by_label("Text").fill("Le enviamos la factura, {first_name}.")
        await sup.get_by_label("Lang.").select_option("es")
        await sup.locator("#cn-save").click()
        await expect(row).to_have_count(2)
        await sup.get_by_role("button", name="Delete Factura").click()
        await expect(row).to_have_count(1)
        await sup.get_by_role("button", name="New canned reply").click()
        await sup.get_by_label("Title").fill("Mal")
        await sup.get_by_label("Text").fill("Hola {nombre}")
        await sup.locator("#cn-save").click()
        await expect(sup.locator("#canned-status")).to_contain_text("unknown placeholder")

        # Tagging crisis by hand takes the crisis path: clinicians, urgent, supervisor alerted.
        await sup.goto(f"{base}/console/#/c/{booking['id']}")
        await sup.locator("#act-tags").click()
        await sup.get_by_label("Tag", exact=True).fill("crisis")
        await expect(sup.locator("#tag-crisis")).to_contain_text("moves the conversation")
        await sup.get_by_label("Reason for the change").fill("Dice que quiere hacerse daño")
        await sup.get_by_role("button", name="Add tag").click()
        head = sup.locator(".conv-head")
        await expect(head).to_have_class(re.compile(r"\bis-crisis\b"), timeout=LIVE)
        await expect(head).to_contain_text("Queue: second_line")
        await expect(head.locator(".prio")).to_contain_text("Urgent")
        await expect(sup.locator('#timeline .system[data-event="crisis.detected"]')).to_have_count(
            1
        )
        # The first line no longer sees it.
        await l1.get_by_role("link", name="Inbox", exact=True).click()
        await expect(l1.locator(f'tr.conv[data-id="{booking["id"]}"]')).to_have_count(0)

        # The new screens speak the agent's language.
        await l1.get_by_label("Language").select_option("ru")
        await expect(l1.get_by_role("searchbox", name="Поиск")).to_be_visible()
        await l1.goto(f"{base}/console/#/c/{other['id']}")
        await expect(l1.get_by_label("Шаблон ответа")).to_be_visible()
        await expect(l1.get_by_role("button", name="Метки")).to_be_visible()
        await l1.get_by_label("Язык").select_option("es")
        await expect(l1.get_by_label("Respuesta predefinida")).to_be_visible()
        await expect(l1.get_by_role("searchbox", name="Buscar")).to_be_visible()

        await ctx.close()
        await sup_ctx.close()
    assert errors == []
