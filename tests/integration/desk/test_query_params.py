"""Unknown query parameters answer 422 everywhere in the API; list endpoints take `sort`."""

from __future__ import annotations

import httpx
import pytest

from router.runtime import Runtime
from tests.conftest import ADMIN, make_agent
from tests.integration.desk.helpers import inbound


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/conversations?stauts=open",
        "/api/v1/conversations?q=cita",  # the issue: q was silently ignored
        "/api/v1/conversations?search=cita",
        "/api/v1/conversations/1?x=1",
        "/api/v1/conversations/1/messages?limit=5&page=2",
        "/api/v1/queues?verbose=1",
        "/api/v1/agents?active=1",
        "/api/v1/callbacks?state=open",
        "/api/v1/search?q=cita&lang=es",
        "/api/v1/reports/volume?since=2026-01-01",
        "/api/v1/canned-replies?lang=es",
    ],
)
async def test_unknown_query_parameters_answer_422(client: httpx.AsyncClient, path: str) -> None:
    await inbound(client, "Quiero cambiar la cita", user="u1", msg="m1")
    r = await client.get(path, headers=ADMIN)
    assert r.status_code == 422, (path, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "unknown query parameter" in r.json()["detail"]


async def test_known_parameters_and_aliases_pass(client: httpx.AsyncClient) -> None:
    await inbound(client, "Quiero cambiar la cita", user="u1", msg="m1")
    for path in (
        "/api/v1/conversations?status=open&limit=5&sort=created_at",
        "/api/v1/reports/volume?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
        "/healthz?probe=1",  # not the API: left alone
    ):
        r = await client.get(path, headers=ADMIN)
        assert r.status_code == 200, (path, r.text)


async def test_sort_on_the_conversation_list(client: httpx.AsyncClient, rt: Runtime) -> None:
    ids = [
        (await inbound(client, f"Quiero cambiar la cita {i}", user=f"u{i}", msg=f"m{i}"))["id"]
        for i in range(3)
    ]
    for sort, expected in (("-created_at", ids[::-1]), ("created_at", ids)):
        seen: list[int] = []
        cursor = None
        while True:
            params = {"sort": sort, "limit": "2", **({"cursor": cursor} if cursor else {})}
            r = await client.get("/api/v1/conversations", params=params, headers=ADMIN)
            assert r.status_code == 200, r.text
            seen += [c["id"] for c in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if not cursor:
                break
        assert seen == expected
    r = await client.get("/api/v1/conversations", params={"sort": "size"}, headers=ADMIN)
    assert r.status_code == 422
    await make_agent(rt, name="zed", role="agent_l1")
    await make_agent(rt, name="amy", role="agent_l1")
    names = [
        a["name"]
        for a in (await client.get("/api/v1/agents?sort=name", headers=ADMIN)).json()["items"]
    ]
    assert names == sorted(names)
    r = await client.get("/api/v1/queues?sort=name", headers=ADMIN)
    assert [q["name"] for q in r.json()["items"]] == ["first_line", "second_line"]
