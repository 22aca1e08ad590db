"""Search: es/ru/en inflections and accents, contacts, visibility, paging, erasure, backfill."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import delete, func, select, text

from models import SearchDocument
from router.repo import search as desk_search
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent
from tests.integration.desk.helpers import inbound, search

ES = "Quiero cambiar la fecha de mi cita, por favor"
RU = "Не могу оплатить счёт за консультацию картой"
EN = "The appointment reminders keep arriving twice"


async def _conv_ids(client: httpx.AsyncClient, q: str, headers: dict[str, str]) -> set[int]:
    return {h["conversation_id"] for h in await search(client, q, headers, types="message")}


@pytest.mark.parametrize(
    ("text", "query"),
    [
        (ES, "citas"),  # plural finds the singular
        (ES, "cambiaré"),  # another tense, with an accent
        ("Necesito la medicación para la tensión", "medicaciones"),
        ("Necesito la medicación para la tensión", "medicacion"),  # typed without accents
        ("Necesito la medicacion para la tension", "medicación"),  # stored without accents
        (RU, "консультации"),  # another case
        (RU, "оплата"),
        (RU, "счет"),  # ё typed as е
        (EN, "reminder"),
        (EN, "arrived"),
        (EN, "appointments"),
    ],
)
async def test_a_word_finds_its_other_forms(
    client: httpx.AsyncClient, text: str, query: str
) -> None:
    conv = await inbound(client, text, user="u1", msg="m1")
    await inbound(client, "Hola, buenas tardes", user="u2", msg="m2")
    hits = await search(client, query, ADMIN)
    assert [h["conversation_id"] for h in hits if h["kind"] == "message"] == [conv["id"]]
    assert hits[0]["excerpt"]


async def test_unrelated_words_do_not_match(client: httpx.AsyncClient) -> None:
    await inbound(client, ES, user="u1", msg="m1")
    assert await search(client, "factura", ADMIN) == []
    # Every word of the query must be there.
    assert await search(client, "cita factura", ADMIN) == []


async def test_contacts_by_name_phone_and_subject_like_identities(
    client: httpx.AsyncClient,
) -> None:
    conv = await inbound(
        client, "Hola", user="app-777", msg="m1", name="Lucía Fernández", phone="+34600111222"
    )
    for q in ("lucia", "Fernández", "fernandez", "+34600111222", "34600111222", "app-777"):
        hits = await search(client, q, ADMIN, types="contact")
        assert [h["contact_id"] for h in hits] == [conv["contact_id"]], q
        assert hits[0]["kind"] == "contact"


async def test_a_merged_contact_is_found_as_the_one_it_joined(client: httpx.AsyncClient) -> None:
    keep = await inbound(client, "Hola", user="app-1", msg="m1", name="Lucía Fernández")
    other = await inbound(client, "Hola otra vez", user="app-2", msg="m2", name="Lucy F")
    r = await client.post(
        f"/api/v1/contacts/{keep['contact_id']}/merge",
        json={"other_contact_id": other["contact_id"]},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    hits = await search(client, "app-2", ADMIN, types="contact")
    assert [h["contact_id"] for h in hits] == [keep["contact_id"]]


async def test_search_never_returns_what_the_caller_may_not_read(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, l1 = await make_agent(rt, name="l1", role="agent_l1", presence="offline")
    _, l2 = await make_agent(rt, name="l2", role="agent_l2", presence="offline")
    clinical = await inbound(
        client,
        "Desde el martes me duele el pecho y no sé si tomar la medicación",
        user="p1",
        msg="m1",
        name="Marta Secreta",
    )
    booking = await inbound(client, "Quiero cambiar la cita del martes", user="p2", msg="m2")
    assert clinical["queue"] == "second_line"
    assert booking["queue"] == "first_line"

    assert await _conv_ids(client, "martes", auth(l2)) == {clinical["id"], booking["id"]}
    assert await _conv_ids(client, "martes", auth(l1)) == {booking["id"]}
    assert await _conv_ids(client, "medicación", auth(l1)) == set()
    # The second-line patient as a contact: invisible to the first line, as GET /contacts is.
    assert await search(client, "Secreta", auth(l1)) == []
    assert [h["contact_id"] for h in await search(client, "Secreta", auth(l2))] == [
        clinical["contact_id"]
    ]
    r = await client.get(f"/api/v1/contacts/{clinical['contact_id']}", headers=auth(l1))
    assert r.status_code == 404


async def test_outbound_replies_and_notes_are_searchable(client: httpx.AsyncClient) -> None:
    conv = await inbound(client, ES, user="u1", msg="m1")
    for body in (
        {"text": "Le hemos reprogramado para el martes"},
        {"text": "Paciente prefiere mañanas", "internal": True},
    ):
        r = await client.post(
            f"/api/v1/conversations/{conv['id']}/messages", json=body, headers=ADMIN
        )
        assert r.status_code == 201, r.text
    out = await search(client, "reprogramar", ADMIN)
    assert [(h["conversation_id"], h["direction"]) for h in out] == [(conv["id"], "out")]
    note = await search(client, "prefieren", ADMIN)
    assert [(h["conversation_id"], h["direction"]) for h in note] == [(conv["id"], "note")]


async def test_paging_with_the_cursor_and_sort(client: httpx.AsyncClient) -> None:
    ids = [
        (await inbound(client, f"Quiero cambiar la cita número {i}", user=f"u{i}", msg=f"m{i}"))[
            "id"
        ]
        for i in range(5)
    ]
    seen: list[int] = []
    cursor = None
    for _ in range(5):
        params = {"q": "cita", "limit": "2", "sort": "-created_at", "types": "message"}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/api/v1/search", params=params, headers=ADMIN)
        assert r.status_code == 200, r.text
        seen += [h["conversation_id"] for h in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    asc = await search(client, "cita", ADMIN, sort="created_at", types="message")
    assert [h["conversation_id"] for h in asc] == ids


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"q": ""}, 422),
        ({"q": "x" * 201}, 422),
        ({"q": "!!! ???"}, 422),  # no word at all
        ({"q": " ".join(["cita"] * 13)}, 422),
        ({"q": "cita", "limit": "51"}, 422),
        ({"q": "cita", "sort": "size"}, 422),
        ({"q": "cita", "types": "files"}, 422),
        ({"q": "cita", "cursor": "not-a-cursor!"}, 422),
        ({"q": "cita", "cursor": "MTAwMQ"}, 422),  # offset 1001: past the last page
        ({"q": 'cita" OR "x'}, 200),  # quotes never reach FTS5 or tsquery syntax
        ({"q": "cita AND NOT (x*)"}, 200),
    ],
)
async def test_bad_queries_are_clear_4xx(
    client: httpx.AsyncClient, params: dict[str, str], status: int
) -> None:
    await inbound(client, ES, user="u1", msg="m1")
    r = await client.get("/api/v1/search", params=params, headers=ADMIN)
    assert r.status_code == status, r.text
    if status != 200:
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_erasure_removes_the_index_rows(client: httpx.AsyncClient, rt: Runtime) -> None:
    conv = await inbound(client, ES, user="u1", msg="m1", name="Lucía Fernández")
    keep = await inbound(client, "Otra cita distinta", user="u2", msg="m2")
    assert await _conv_ids(client, "cita", ADMIN) == {conv["id"], keep["id"]}
    r = await client.delete(f"/api/v1/contacts/{conv['contact_id']}", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert await _conv_ids(client, "cita", ADMIN) == {keep["id"]}
    assert await search(client, "lucia", ADMIN) == []
    async with rt.db.session() as s:
        left = await s.scalar(
            select(func.count())
            .select_from(SearchDocument)
            .where(
                (SearchDocument.conversation_id == conv["id"])
                | (SearchDocument.contact_id == conv["contact_id"])
            )
        )
        assert left == 0
        if rt.db.dialect == "sqlite":
            # No stems left behind in the FTS5 table either.
            fts = await s.scalar(text("SELECT count(*) FROM search_fts"))
            docs = await s.scalar(select(func.count()).select_from(SearchDocument))
            assert fts == docs


async def test_backfill_indexes_what_was_stored_before(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    conv = await inbound(client, RU, user="u1", msg="m1", name="Иван Петров")
    async with rt.db.session() as s:
        if rt.db.dialect == "sqlite":
            await s.execute(text("DELETE FROM search_fts"))
        await s.execute(delete(SearchDocument))
    assert await search(client, "консультации", ADMIN) == []
    async with rt.db.session() as s:
        await desk_search.backfill(s)
    assert await _conv_ids(client, "консультации", ADMIN) == {conv["id"]}
    assert [h["kind"] for h in await search(client, "Петрову", ADMIN, types="contact")] == [
        "contact"
    ]


def test_fts_query_quotes_every_form() -> None:
    q = desk_search.fts_query(desk_search.query_words('medicación "x'))
    assert q.startswith('("medic"')
    assert ' AND ("x")' in q


async def test_subjects_are_searchable_and_follow_edits(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    from models import Conversation

    conv = await inbound(client, "Hola", user="u1", msg="m1")
    async with rt.db.session() as s:
        c = await s.get(Conversation, conv["id"])
        assert c is not None
        c.subject = "Factura duplicada de noviembre"
    hits = await search(client, "facturas", ADMIN, types="subject")
    assert [(h["kind"], h["conversation_id"]) for h in hits] == [("subject", conv["id"])]
    async with rt.db.session() as s:
        c = await s.get(Conversation, conv["id"])
        assert c is not None
        c.subject = "Cambio de cita"
    assert await search(client, "factura", ADMIN, types="subject") == []
    assert len(await search(client, "citas", ADMIN, types="subject")) == 1


async def test_a_rolled_back_savepoint_leaves_no_index_rows(rt: Runtime) -> None:
    from models import Contact, Conversation, Message

    async with rt.db.session() as s:
        contact = Contact(name="Nadie")
        s.add(contact)
        await s.flush()
        conv = Conversation(contact_id=contact.id, channel="app")
        s.add(conv)
        await s.flush()
        try:
            async with s.begin_nested():
                s.add(Message(conversation_id=conv.id, direction="in", channel="app", text="cita"))
                await s.flush()
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
    async with rt.db.session() as s:
        n = await s.scalar(
            select(func.count()).select_from(SearchDocument).where(SearchDocument.kind == "message")
        )
    assert n == 0
