"""A 2xx leaves only once the data is committed: at the moment the response starts, another
connection already sees the message. (FastAPI runs a yield dependency's exit, our commit,
after the response unless the dependency is function-scoped; a kill -9 in between lost
acknowledged messages.)"""

from __future__ import annotations

import json
import sqlite3

from sqlalchemy import text

from router.api import create_app
from router.runtime import Runtime
from tests.support import asgi


async def committed_inbound(rt: Runtime, external_id: str) -> int:
    """Count from outside the request's transaction (committed rows only)."""
    sql = "SELECT count(*) FROM messages WHERE external_id = :x AND direction = 'in'"
    if rt.db.dialect == "sqlite":
        # A plain reader: the engine's connections take the write lock at BEGIN.
        path = rt.db.url.split("///", 1)[1]
        with sqlite3.connect(path) as conn:
            return int(conn.execute(sql.replace(":x", "?"), (external_id,)).fetchone()[0])
    async with rt.db.engine.connect() as conn:
        return int((await conn.execute(text(sql), {"x": external_id})).scalar_one())


async def test_response_starts_after_the_commit(rt: Runtime) -> None:
    app = create_app(runtime=rt)
    app.state.runtime = rt
    body = json.dumps(
        {"contact": {"external_id": "u1"}, "message": {"external_id": "m-durable", "text": "hola"}}
    ).encode()
    at_start: list[tuple[int, int]] = []

    async def on_start(status: int) -> None:
        at_start.append((status, await committed_inbound(rt, "m-durable")))

    await asgi.post(app, "/api/v1/inbound", [body], on_start=on_start)
    assert at_start == [(200, 1)]
