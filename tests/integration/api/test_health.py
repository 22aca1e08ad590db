from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker

from router.db import make_engine
from router.runtime import Runtime
from tests.conftest import ADMIN


async def test_health_ready_metrics(client: httpx.AsyncClient, rt: Runtime) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] in ("sqlite", "postgresql")
    await client.post(
        "/api/v1/inbound",
        json={"contact": {"external_id": "u"}, "message": {"external_id": "m", "text": "hola"}},
        headers=ADMIN,
    )
    text = (await client.get("/metrics")).text
    assert 'careline_ingest_total{channel="app",result="stored"}' in text
    assert "careline_ingest_seconds_bucket" in text


async def test_readyz_is_503_when_the_database_is_gone(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    await rt.db.dispose()
    # Point the runtime at a database nobody listens on: an outage, as seen by the app.
    rt.db.engine = make_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    rt.db.sessionmaker = async_sessionmaker(rt.db.engine, expire_on_commit=False)
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    # A webhook must answer 503 (the sender retries), never 500 and never 2xx.
    r = await client.post(
        "/api/v1/inbound",
        json={"contact": {"external_id": "u"}, "message": {"external_id": "m", "text": "hola"}},
        headers=ADMIN,
    )
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"]
    await rt.db.engine.dispose()


async def test_unknown_paths_and_methods_are_problem_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/nothing-here", headers=ADMIN)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.delete("/api/v1/queues", headers=ADMIN)
    assert r.status_code == 405
    assert r.json()["status"] == 405


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in ("/api/v1/inbound", "/api/v1/conversations", "/api/v1/events", "/api/v1/queues"):
        assert path in spec["paths"]
    assert (await client.get("/docs")).status_code == 200
