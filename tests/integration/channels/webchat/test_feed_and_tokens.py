"""Pure parts (tokens, the socket cursor) and feed paging, without a socket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from channels.webchat import feed
from channels.webchat.tokens import BadToken, VisitorClaims, derive_key, sign, verify
from models.messages import InboundMessage, Sender
from router.flows.ingest import ingest
from router.runtime import Runtime

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEY = derive_key("secret")


def test_token_round_trip_and_tampering() -> None:
    claims = VisitorClaims("vabc", int((NOW + timedelta(days=1)).timestamp()), name="Ана")
    token = sign(KEY, claims)
    assert verify(KEY, token, NOW) == claims
    with pytest.raises(BadToken, match="signature"):
        verify(derive_key("other secret"), token, NOW)
    with pytest.raises(BadToken, match="expired"):
        verify(KEY, token, NOW + timedelta(days=2))
    for broken in ("", "abc", "abc.", ".abc", token.replace(".", "!"), token + "x" * 5000):
        with pytest.raises(BadToken):
            verify(KEY, broken, NOW)


def test_derived_keys_differ_by_purpose() -> None:
    assert derive_key("s") != derive_key("s", b"another purpose")


def frame(i: int) -> dict[str, Any]:
    return {"type": "message", "id": i}


def test_cursor_delivers_a_late_committed_lower_id_once(monkeypatch: pytest.MonkeyPatch) -> None:
    t = [100.0]
    monkeypatch.setattr(feed.time, "monotonic", lambda: t[0])
    cur = feed.Cursor(floor=5)
    assert [f["id"] for f in cur.fresh([frame(7)])] == [7]
    # id 6 commits after 7 was sent: the next read (still from the floor) brings it, once.
    assert [f["id"] for f in cur.fresh([frame(6), frame(7)])] == [6]
    assert cur.fresh([frame(6), frame(7)]) == []
    t[0] += feed.SETTLE_S + 1
    cur.settle()
    assert cur.floor == 7
    assert cur.recent == {}
    assert cur.fresh([frame(7), frame(8)]) == [frame(8)]


async def test_feed_pages_through_long_histories(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "PAGE", 2)
    for i in range(5):
        async with rt.db.session() as s:
            await ingest(
                s,
                rt,
                InboundMessage(
                    channel="webchat",
                    external_id=feed.external_id("vpage", f"c{i}"),
                    sender=Sender(external_id="vpage"),
                    text=f"m{i}",
                    received_at=rt.now(),
                    channel_meta={"client_id": f"c{i}"},
                ),
            )
    texts: list[str] = []
    after = 0
    while True:
        async with rt.db.session() as s:
            page = await feed.messages_after(s, "vpage", after)
        texts += [f["text"] for f in page.frames if f["direction"] == "in"]
        if not page.more:
            break
        after = page.last_id
    assert texts == [f"m{i}" for i in range(5)]
    async with rt.db.session() as s:
        assert (await feed.messages_after(s, "someone-else", 0)).frames == []
