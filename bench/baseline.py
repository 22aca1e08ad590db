"""The scale benchmark's baseline: the least a web service can do per inbound message.

One FastAPI endpoint, `POST /ingest` with a small JSON body, does one asyncpg INSERT (its own
implicit transaction, so the 200 goes out after the commit) and answers 200. It runs the way
`careline serve` runs: one uvicorn process, same loop and HTTP parser, access log off. Careline's
rate is reported as a fraction of this one. Started by bench/scale.py; by hand:

    BASELINE_DSN=postgresql://postgres@127.0.0.1:5432/somedb python bench/baseline.py --port 8100
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

DDL = """
CREATE TABLE IF NOT EXISTS baseline_messages (
    id bigserial PRIMARY KEY,
    customer text NOT NULL,
    external_id text NOT NULL UNIQUE,
    text text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
# A unique external id like Careline's de-dup key, so the baseline pays for one index too.
INSERT = "INSERT INTO baseline_messages (customer, external_id, text) VALUES ($1, $2, $3)"


class Inbound(BaseModel):
    customer: str = Field(max_length=200)
    external_id: str = Field(max_length=200)
    text: str = Field(max_length=4000)


class Ack(BaseModel):
    ok: bool = True


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The same pool ceiling as Careline's engine (pool_size 10 + overflow 20).
    pool = await asyncpg.create_pool(os.environ["BASELINE_DSN"], min_size=10, max_size=30)
    async with pool.acquire() as conn:
        await conn.execute(DDL)
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> Ack:
    return Ack()


@app.post("/ingest")
async def ingest(body: Inbound) -> Ack:
    pool: asyncpg.Pool = app.state.pool
    await pool.execute(INSERT, body.customer, body.external_id, body.text)
    return Ack()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8100)
    args = ap.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
