"""Console sign-in: invitations, argon2 passwords, cookie sessions, CSRF, expiry, lockout."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from models import StaffCredential
from router.console.settings import ConsoleSettings
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent
from tests.support.fakes import FakeClock

BOOKING = "Quiero cambiar mi cita del jueves"
CLINICAL = "Me duele mucho el pecho desde ayer y no sé si tomar la medicación"
PASSWORD = "correct horse battery staple"


async def invite(client: httpx.AsyncClient, agent_id: int, headers: dict[str, str]) -> str:
    r = await client.post(f"/api/v1/agents/{agent_id}/invitation", headers=headers)
    assert r.status_code == 201, r.text
    url = str(r.json()["url"])
    assert "/console/#/invite/" in url
    return url.rsplit("/", 1)[1]


async def staff(
    client: httpx.AsyncClient, rt: Runtime, email: str, role: str = "agent_l1", **kw: Any
) -> tuple[int, str]:
    """An agent with a console password set from an invitation; returns (id, bearer token)."""
    agent_id, token = await make_agent(rt, name=email, email=email, role=role, **kw)
    inv = await invite(client, agent_id, ADMIN)
    r = await client.post(
        "/console/api/invitations/accept", json={"token": inv, "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"email": email}
    return agent_id, token


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> dict[str, str]:
    """Headers of a console session: its cookie and CSRF token."""
    r = await client.post("/console/api/session", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    sid = cookie.split(";", 1)[0].split("=", 1)[1]
    client.cookies.clear()  # each test passes its session explicitly
    return {"Cookie": f"careline_session={sid}", "X-CSRF-Token": r.json()["csrf_token"]}


def no_csrf(h: dict[str, str]) -> dict[str, str]:
    return {"Cookie": h["Cookie"]}


async def new_conv(client: httpx.AsyncClient, text: str, user: str, msg: str) -> int:
    r = await client.post(
        "/api/v1/inbound",
        json={"contact": {"external_id": user}, "message": {"external_id": msg, "text": text}},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    return int(r.json()["conversation_id"])


async def test_an_invitation_sets_the_password_and_sign_in_sets_a_strict_cookie(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    agent_id, _ = await staff(client, rt, "ana@clinic.example")
    async with rt.db.session() as s:
        cred = await s.scalar(select(StaffCredential).where(StaffCredential.agent_id == agent_id))
    assert cred is not None
    assert cred.password_hash.startswith("$argon2id$")
    assert PASSWORD not in cred.password_hash

    r = await client.post(
        "/console/api/session", json={"email": "ANA@clinic.example", "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/" in cookie
    assert "secure" not in cookie  # plain http here; see the next test
    assert r.json()["agent"]["id"] == agent_id
    client.cookies.clear()

    assert (
        await client.post(
            "/console/api/session", json={"email": "ana@clinic.example", "password": "nope"}
        )
    ).status_code == 401
    assert (
        await client.post(
            "/console/api/session", json={"email": "who@clinic.example", "password": PASSWORD}
        )
    ).status_code == 401
    # Bad input is a clear 4xx.
    for body in ({}, {"email": "a@b.c"}, {"email": "a@b.c", "password": "x" * 300}, []):
        assert (await client.post("/console/api/session", json=body)).status_code == 422


async def test_the_cookie_is_secure_over_https(client: httpx.AsyncClient, rt: Runtime) -> None:
    await staff(client, rt, "ana@clinic.example")
    r = await client.post(
        "https://careline.test/console/api/session",
        json={"email": "ana@clinic.example", "password": PASSWORD},
    )
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("__Host-careline_session=")
    assert "secure" in cookie.lower()
    client.cookies.clear()


async def test_an_invitation_is_one_time_and_expires(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    agent_id, _ = await make_agent(rt, name="a", email="a@clinic.example", role="agent_l1")
    first = await invite(client, agent_id, ADMIN)
    second = await invite(client, agent_id, ADMIN)
    accept = "/console/api/invitations/accept"
    # A newer link replaces the older one.
    assert (
        await client.post(accept, json={"token": first, "password": PASSWORD})
    ).status_code == 404
    r = await client.post(accept, json={"token": second, "password": "short"})
    assert r.status_code == 422
    assert (
        await client.post(accept, json={"token": second, "password": PASSWORD})
    ).status_code == 200
    assert (
        await client.post(accept, json={"token": second, "password": PASSWORD})
    ).status_code == 404
    third = await invite(client, agent_id, ADMIN)
    clock.advance(hours=73)
    assert (
        await client.post(accept, json={"token": third, "password": PASSWORD})
    ).status_code == 404


async def test_who_may_be_invited(client: httpx.AsyncClient, rt: Runtime) -> None:
    _, sup = await make_agent(rt, name="s", email="s@clinic.example", role="supervisor")
    admin_id, _ = await make_agent(rt, name="ad", email="ad@clinic.example", role="admin")
    integ_id, _ = await make_agent(rt, name="app", role="integration")
    no_mail, _ = await make_agent(rt, name="nomail", role="agent_l1")
    l1_id, l1 = await make_agent(rt, name="l1", email="l1@clinic.example", role="agent_l1")
    post = "/api/v1/agents/{}/invitation"
    assert (await client.post(post.format(admin_id), headers=auth(sup))).status_code == 403
    assert (await client.post(post.format(integ_id), headers=ADMIN)).status_code == 422
    assert (await client.post(post.format(no_mail), headers=ADMIN)).status_code == 422
    assert (await client.post(post.format(l1_id), headers=auth(l1))).status_code == 403
    assert (await client.post(post.format(999999), headers=ADMIN)).status_code == 404
    assert (await client.post(post.format(l1_id), headers=auth(sup))).status_code == 201
    # Two active agents never share a sign-in address.
    dup, _ = await make_agent(rt, name="dup", email="L1@clinic.example", role="agent_l1")
    assert (await client.post(post.format(dup), headers=ADMIN)).status_code == 409


async def test_cookie_writes_need_the_csrf_token_and_bearer_writes_do_not(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, token = await staff(client, rt, "ana@clinic.example")
    h = await sign_in(client, "ana@clinic.example")
    conv = await new_conv(client, BOOKING, "c1", "m1")
    claim = f"/api/v1/conversations/{conv}/claim"
    r = await client.post(claim, headers=no_csrf(h))
    assert r.status_code == 403
    assert "CSRF" in r.json()["detail"]
    r = await client.post(claim, headers={**no_csrf(h), "X-CSRF-Token": "0" * 64})
    assert r.status_code == 403
    # Reads need none.
    r = await client.get(f"/api/v1/conversations/{conv}", headers=no_csrf(h))
    assert r.status_code == 200
    assert (await client.post(claim, headers=h)).status_code == 200
    r = await client.post(
        f"/api/v1/conversations/{conv}/messages", json={"text": "hola"}, headers=no_csrf(h)
    )
    assert r.status_code == 403
    r = await client.post(
        f"/api/v1/conversations/{conv}/messages", json={"text": "hola"}, headers=auth(token)
    )
    assert r.status_code == 201
    # Sign-out and heartbeat are writes too.
    assert (await client.post("/console/api/heartbeat", headers=no_csrf(h))).status_code == 403
    assert (await client.delete("/console/api/session", headers=no_csrf(h))).status_code == 403
    # Another session's token does not fit this one.
    other = await sign_in(client, "ana@clinic.example")
    r = await client.post(
        "/console/api/heartbeat", headers={**no_csrf(h), "X-CSRF-Token": other["X-CSRF-Token"]}
    )
    assert r.status_code == 403


async def test_a_session_expires_when_idle_and_at_its_absolute_limit(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    await staff(client, rt, "ana@clinic.example")
    me = "/console/api/session"
    h = await sign_in(client, "ana@clinic.example")
    clock.advance(minutes=29)
    assert (await client.get("/api/v1/conversations", headers=no_csrf(h))).status_code == 200
    clock.advance(minutes=29)  # 58 min after sign-in, 29 after the last request: still on
    assert (await client.get(me, headers=no_csrf(h))).status_code == 200
    clock.advance(minutes=31)
    r = await client.get("/api/v1/conversations", headers=no_csrf(h))
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]
    assert (await client.get(me, headers=no_csrf(h))).status_code == 401

    # Busy all day: the absolute limit (12 h) still ends it.
    h = await sign_in(client, "ana@clinic.example")
    for _ in range(25):
        clock.advance(minutes=29)
        if (await client.get("/api/v1/queues", headers=no_csrf(h))).status_code == 401:
            break
    assert (await client.get("/api/v1/queues", headers=no_csrf(h))).status_code == 401


async def test_sign_out_ends_the_session_on_the_server(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    await staff(client, rt, "ana@clinic.example")
    h = await sign_in(client, "ana@clinic.example")
    r = await client.delete("/console/api/session", headers=h)
    assert r.status_code == 204
    assert "careline_session=" in r.headers["set-cookie"]
    # The old cookie, replayed, opens nothing.
    assert (await client.get("/api/v1/conversations", headers=no_csrf(h))).status_code == 401
    # A new password (a new invitation accepted) ends every open session too.
    h = await sign_in(client, "ana@clinic.example")
    async with rt.db.session() as s:
        from models import Agent

        agent_id = await s.scalar(select(Agent.id).where(Agent.email == "ana@clinic.example"))
    inv = await invite(client, int(agent_id or 0), ADMIN)
    r = await client.post(
        "/console/api/invitations/accept", json={"token": inv, "password": "another long one!"}
    )
    assert r.status_code == 200
    assert (await client.get("/api/v1/conversations", headers=no_csrf(h))).status_code == 401


async def test_repeated_wrong_passwords_lock_the_account(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    await staff(client, rt, "ana@clinic.example")
    body = {"email": "ana@clinic.example", "password": "wrong password"}
    for _ in range(4):
        assert (await client.post("/console/api/session", json=body)).status_code == 401
    r = await client.post("/console/api/session", json=body)
    assert r.status_code == 429
    assert r.json()["title"] == "Account locked"
    assert int(r.headers["Retry-After"]) == 900
    # Locked: even the right password does not open it.
    good = {"email": "ana@clinic.example", "password": PASSWORD}
    r = await client.post("/console/api/session", json=good)
    assert r.status_code == 429
    clock.advance(minutes=16)
    await sign_in(client, "ana@clinic.example")


async def test_sign_in_is_rate_limited_per_client_address(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    # A burst of 10, then one a minute (not the default 10 a minute: a slow machine would
    # refill a token while the 12 argon2 checks below run).
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    transport.app.state.console_settings = ConsoleSettings(  # type: ignore[attr-defined]
        logins_per_min=1, logins_burst=10, _env_file=None
    )
    codes = []
    for i in range(12):
        r = await client.post(
            "/console/api/session", json={"email": f"x{i}@clinic.example", "password": "guess"}
        )
        codes.append(r.status_code)
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 429]
    assert "Retry-After" in r.headers


async def test_a_first_line_session_sees_exactly_what_its_token_sees(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, token = await staff(client, rt, "l1@clinic.example", presence="offline")
    h = await sign_in(client, "l1@clinic.example")
    booking = await new_conv(client, BOOKING, "c1", "m1")
    clinical = await new_conv(client, CLINICAL, "c2", "m2")
    by_cookie = (await client.get("/api/v1/conversations", headers=no_csrf(h))).json()
    by_token = (await client.get("/api/v1/conversations", headers=auth(token))).json()
    assert by_cookie == by_token
    assert [c["id"] for c in by_cookie["items"]] == [booking]
    for path in ("", "/messages", "/activity"):
        r = await client.get(f"/api/v1/conversations/{clinical}{path}", headers=no_csrf(h))
        assert r.status_code == 404, path
    assert (await client.get("/api/v1/crises", headers=no_csrf(h))).status_code == 403
    assert (await client.get("/api/v1/wallboard", headers=no_csrf(h))).status_code == 403
    # An integration account has no console.
    _, _integ = await make_agent(rt, name="app", email="app@clinic.example", role="integration")
    r = await client.post(
        "/console/api/session", json={"email": "app@clinic.example", "password": PASSWORD}
    )
    assert r.status_code == 401


@pytest.mark.parametrize("path", ["/console/", "/console/static/console.js"])
async def test_console_pages_allow_no_other_host(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "http" not in csp
    assert (await client.get("/console/static/..%2Fauth.py")).status_code == 404
    assert (await client.get("/console", follow_redirects=False)).status_code == 308


async def test_each_console_session_has_its_own_api_rate_limit(rt: Runtime) -> None:
    """Agents behind one address (a clinic's NAT) do not share one bucket; a junk cookie buys
    no bucket of its own."""
    from router.api import create_app

    # One a minute after a burst of 3: nothing refills while the argon2 checks run.
    rt.settings = rt.settings.model_copy(
        update={"rate_limit_api_per_min": 1, "rate_limit_api_burst": 3}
    )
    app = create_app(runtime=rt)
    app.state.runtime = rt
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        await staff(c, rt, "a@clinic.example")
        await staff(c, rt, "b@clinic.example")
        a = no_csrf(await sign_in(c, "a@clinic.example"))
        b = no_csrf(await sign_in(c, "b@clinic.example"))
        codes = [(await c.get("/api/v1/queues", headers=a)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert (await c.get("/api/v1/queues", headers=b)).status_code == 200
        # The address's bucket paid for the admin's, a's and b's first requests: it is empty.
        junk = [
            (await c.get("/api/v1/queues", headers={"Cookie": f"careline_session=junk{i}"}))
            for i in range(3)
        ]
        assert [r.status_code for r in junk] == [429, 429, 429]
