"""Body size limits per endpoint: refused with 413 problem+json before the body is read whole,
whether the size is declared (Content-Length) or only seen while streaming (chunked)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from router.api import create_app
from router.runtime import Runtime
from tests.conftest import ADMIN
from tests.support import factories


@pytest.fixture
async def small(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    rt.settings = rt.settings.model_copy(
        update={"api_max_body_bytes": 2_000, "max_body_bytes": 4_000, "email_max_bytes": 50_000}
    )
    app = create_app(runtime=rt)
    app.state.runtime = rt
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://careline.test") as c:
        yield c


def inbound(text: str, external_id: str = "m1") -> dict[str, object]:
    return {"contact": {"external_id": "u1"}, "message": {"external_id": external_id, "text": text}}


async def stream(body: bytes, chunk: int = 500) -> AsyncIterator[bytes]:
    for i in range(0, len(body), chunk):
        yield body[i : i + chunk]


def assert_413(r: httpx.Response, limit: int) -> None:
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert str(limit) in r.json()["detail"]


async def count_messages(rt: Runtime) -> int:
    return await factories.count_messages(rt, direction="in")


async def test_api_body_under_the_limit_is_taken(small: httpx.AsyncClient, rt: Runtime) -> None:
    r = await small.post("/api/v1/inbound", json=inbound("x" * 1_000), headers=ADMIN)
    assert r.status_code == 200, r.text
    assert await count_messages(rt) == 1


async def test_api_body_over_the_limit_is_refused_by_its_declared_length(
    small: httpx.AsyncClient, rt: Runtime
) -> None:
    r = await small.post("/api/v1/inbound", json=inbound("x" * 3_000), headers=ADMIN)
    assert_413(r, 2_000)
    assert await count_messages(rt) == 0


async def test_chunked_body_is_counted_while_it_streams(
    small: httpx.AsyncClient, rt: Runtime
) -> None:
    import json

    body = json.dumps(inbound("x" * 3_000)).encode()
    r = await small.post(
        "/api/v1/inbound",
        content=stream(body),
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert "content-length" not in r.request.headers  # really chunked
    assert_413(r, 2_000)
    assert await count_messages(rt) == 0


async def test_each_endpoint_has_its_own_limit(small: httpx.AsyncClient) -> None:
    # 3 kB: too big for the API, fine for a webhook (refused there only for its signature).
    body = b"x" * 3_000
    api = await small.post("/api/v1/inbound", content=body, headers=ADMIN)
    assert_413(api, 2_000)
    hook = await small.post("/webhooks/calls", content=body)
    assert hook.status_code != 413
    # 10 kB: too big for a webhook, fine for the email webhook (which allows whole mails).
    big = b"x" * 10_000
    assert_413(await small.post("/webhooks/calls", content=big), 4_000)
    mail = await small.post(
        "/webhooks/email", content=big, headers={"Content-Type": "message/rfc822"}
    )
    assert mail.status_code != 413
    assert_413(
        await small.post(
            "/webhooks/email", content=b"x" * 60_000, headers={"Content-Type": "message/rfc822"}
        ),
        50_000,
    )
