"""Canned replies: supervisors manage them, agents list theirs and render placeholders."""

from __future__ import annotations

import httpx
import pytest

from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent
from tests.integration.desk.helpers import inbound

BOOKING = "Quiero cambiar la cita del jueves"


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **body: object) -> int:
    r = await client.post("/api/v1/canned-replies", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_supervisors_manage_agents_list_by_tier_and_language(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, sup = await make_agent(rt, name="sup", role="supervisor", presence="offline")
    _, l1 = await make_agent(rt, name="l1", role="agent_l1", languages=["es"], presence="offline")
    _, l2 = await make_agent(rt, name="l2", role="agent_l2", languages=["ru"], presence="offline")
    es_any = await _create(
        client, auth(sup), title="Saludo", body="Hola {first_name}", language="es"
    )
    ru_l2 = await _create(
        client,
        auth(sup),
        title="Приветствие",
        body="Здравствуйте",
        language="ru",
        queue="second_line",
    )
    es_l2 = await _create(
        client,
        auth(sup),
        title="Clínico",
        body="Un médico le escribe",
        language="es",
        queue="second_line",
    )
    neutral = await _create(client, auth(sup), title="Ref", body="Ref {reference}")

    r = await client.post(
        "/api/v1/canned-replies", json={"title": "x", "body": "y"}, headers=auth(l1)
    )
    assert r.status_code == 403

    def ids(r: httpx.Response) -> list[int]:
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    # The caller's languages by default; never a queue above their tier.
    assert ids(await client.get("/api/v1/canned-replies", headers=auth(l1))) == [es_any, neutral]
    assert ids(await client.get("/api/v1/canned-replies?language=ru", headers=auth(l1))) == [
        neutral
    ]
    assert ids(await client.get("/api/v1/canned-replies", headers=auth(l2))) == [ru_l2, neutral]
    assert ids(await client.get("/api/v1/canned-replies?language=es", headers=auth(l2))) == [
        es_any,
        es_l2,
        neutral,
    ]
    assert ids(
        await client.get("/api/v1/canned-replies?language=es&sort=-created_at", headers=auth(l2))
    ) == [neutral, es_l2, es_any]
    assert (
        await client.get(f"/api/v1/canned-replies/{es_l2}", headers=auth(l1))
    ).status_code == 404

    r = await client.patch(
        f"/api/v1/canned-replies/{es_any}",
        json={"body": "Buenos días {first_name}"},
        headers=auth(sup),
    )
    assert r.status_code == 200
    assert r.json()["body"] == "Buenos días {first_name}"
    assert r.json()["language"] == "es"
    assert (
        await client.delete(f"/api/v1/canned-replies/{neutral}", headers=auth(sup))
    ).status_code == 204
    assert (await client.get(f"/api/v1/canned-replies/{neutral}", headers=ADMIN)).status_code == 404


async def test_render_fills_first_name_public_agent_name_and_reference(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    rt.policy.public_names["ruiz@clinic.example"] = "Dr. Ruiz"
    _, l1 = await make_agent(
        rt, name="Internal Name", email="ruiz@clinic.example", role="agent_l1", presence="offline"
    )
    conv = await inbound(client, BOOKING, user="u1", msg="m1", name="Lucía Fernández")
    rid = await _create(
        client,
        ADMIN,
        title="Saludo",
        body="Hola {first_name}, soy {agent_name}. Su referencia: {reference}. {{literal}}",
        language="es",
    )
    r = await client.post(
        f"/api/v1/canned-replies/{rid}/render",
        json={"conversation_id": conv["id"]},
        headers=auth(l1),
    )
    assert r.status_code == 200, r.text
    assert r.json()["text"] == (
        f"Hola Lucía, soy Dr. Ruiz. Su referencia: #{conv['id']}. {{literal}}"
    )
    # A conversation the caller may not read renders nothing.
    clinical = await inbound(client, "Me duele el pecho, ¿tomo la medicación?", user="u2", msg="m2")
    r = await client.post(
        f"/api/v1/canned-replies/{rid}/render",
        json={"conversation_id": clinical["id"]},
        headers=auth(l1),
    )
    assert r.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"title": "x", "body": "Hola {nombre}"},
        {"title": "x", "body": "Hola {first_name.__class__}"},
        {"title": "x", "body": "Hola {first_name!r}"},
        {"title": "x", "body": "Hola {0}"},
        {"title": "x", "body": "Hola {"},
        {"title": "x", "body": "Hola", "language": "spanish"},
        {"title": "x", "body": "Hola", "queue": "third_line"},
        {"title": "", "body": "Hola"},
        {"title": "x", "body": "y" * 4001},
        {"title": "x", "body": "Hola", "extra": 1},
    ],
)
async def test_bad_replies_are_refused_with_a_reason(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    r = await client.post("/api/v1/canned-replies", json=body, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
