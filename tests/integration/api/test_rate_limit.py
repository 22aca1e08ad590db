"""Rate limits: 429 problem+json with Retry-After, per token and per webhook client."""

from __future__ import annotations

import httpx
import pytest

from router.api import create_app
from router.api.ratelimit import TokenBuckets
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


async def test_rotating_junk_tokens_share_the_client_address_bucket(rt: Runtime) -> None:
    rt.settings = rt.settings.model_copy(
        update={"rate_limit_api_per_min": 60, "rate_limit_api_burst": 3}
    )
    _, token = await make_agent(rt, name="a", role="agent_l1")
    app = create_app(runtime=rt)
    app.state.runtime = rt
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        # A valid token, once authenticated, has a bucket of its own...
        assert (await c.get("/api/v1/queues", headers=auth(token))).status_code == 200
        codes = [
            (await c.get("/api/v1/queues", headers=auth(f"junk-{n}"))).status_code for n in range(4)
        ]
        # ...while invalid tokens are keyed by address: a fresh junk token buys nothing.
        assert codes == [401, 401, 429, 429]
        assert (await c.get("/api/v1/queues")).status_code == 429, "no token: the address"
        assert (await c.get("/api/v1/queues", headers=auth(token))).status_code == 200


async def test_integration_tokens_have_their_own_higher_limit(rt: Runtime) -> None:
    assert rt.settings.rate_limit_integration_per_min > rt.settings.rate_limit_api_per_min
    rt.settings = rt.settings.model_copy(
        update={
            "rate_limit_api_per_min": 60,
            "rate_limit_api_burst": 2,
            "rate_limit_integration_per_min": 600,
            "rate_limit_integration_burst": 6,
        }
    )
    _, token = await make_agent(rt, name="backend", role="integration")
    app = create_app(runtime=rt)
    app.state.runtime = rt
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        codes = [
            (
                await c.get(
                    "/api/v1/inbound/messages",
                    params={"contact_external_id": "nobody"},
                    headers=auth(token),
                )
            ).status_code
            for _ in range(7)
        ]
    assert codes == [404] * 6 + [429]
