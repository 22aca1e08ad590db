"""Rate limits: 429 problem+json with Retry-After, per token and per webhook client."""

from __future__ import annotations

import httpx
import pytest

from router.api import create_app
from router.ratelimit import TokenBuckets
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    b = TokenBuckets(60, burst=2, clock=lambda: now[0])  # one per second
    assert [b.take("k"), b.take("k")] == [0.0, 0.0]
    assert b.take("k") == pytest.approx(1.0)
    assert b.take("other") == 0.0, "callers do not share a bucket"
    now[0] += 1.0
    assert b.take("k") == 0.0


async def test_api_token_over_its_limit_gets_429_with_retry_after(rt: Runtime) -> None:
    rt.settings = rt.settings.model_copy(
        update={"rate_limit_api_per_min": 60, "rate_limit_api_burst": 3}
    )
    _, token = await make_agent(rt, name="a", role="agent_l1")
    app = create_app(runtime=rt)
    app.state.runtime = rt
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        codes = [(await c.get("/api/v1/queues", headers=auth(token))).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = await c.get("/api/v1/queues", headers=auth(token))
        assert r.status_code == 429
        assert r.headers["content-type"].startswith("application/problem+json")
        assert int(r.headers["retry-after"]) >= 1
        # Another caller is not affected, and health probes are never limited.
        assert (await c.get("/api/v1/queues", headers=ADMIN)).status_code == 200
        assert (await c.get("/healthz")).status_code == 200


async def test_webhook_flood_from_one_address_is_limited(rt: Runtime) -> None:
    rt.settings = rt.settings.model_copy(
        update={"rate_limit_webhooks_per_min": 60, "rate_limit_webhooks_burst": 2}
    )
    app = create_app(runtime=rt)
    app.state.runtime = rt
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        codes = [(await c.post("/webhooks/email", content=b"x")).status_code for _ in range(3)]
    assert codes[:2] == [404, 404], "unconfigured email webhook: 404 until the limit"
    assert codes[2] == 429
