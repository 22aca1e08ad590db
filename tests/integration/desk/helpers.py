"""Shared steps of the support-desk tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ADMIN


async def inbound(
    client: httpx.AsyncClient,
    text: str,
    *,
    user: str,
    msg: str,
    name: str | None = None,
    phone: str | None = None,
) -> dict[str, Any]:
    """An app message; returns the conversation as the admin reads it."""
    contact: dict[str, Any] = {"external_id": user}
    if name:
        contact["name"] = name
    if phone:
        contact["phone"] = phone
        contact["verified"] = True
    r = await client.post(
        "/api/v1/inbound",
        json={"contact": contact, "message": {"external_id": msg, "text": text}},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    conv = await client.get(f"/api/v1/conversations/{r.json()['conversation_id']}", headers=ADMIN)
    assert conv.status_code == 200, conv.text
    return dict(conv.json())


async def search(
    client: httpx.AsyncClient, q: str, headers: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/search", params={"q": q, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])
