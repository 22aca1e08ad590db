"""Ingest benchmark: app-channel messages over real HTTP into a real `careline serve`.

Starts the service (uvicorn, one process) on a fresh database, posts N messages from N/4
distinct customers with C concurrent clients, and reports throughput and latency
percentiles of the 2xx answers (each answer means "persisted and routed"). Not a test.

    python bench/ingest.py --db sqlite --n 2000 --concurrency 16
    python bench/ingest.py --db postgresql --n 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import httpx

TEXTS = [
    "Hola, quiero cambiar mi cita del jueves",
    "Здравствуйте, не могу войти в приложение",
    "I was charged twice for my last visit",
    "Me duele la cabeza desde que tomo la nueva medicación",
]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(base: str, token: str, n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            body = {
                "contact": {"external_id": f"bench-{i % max(1, n // 4)}"},
                "message": {"external_id": f"bench-m{i}", "text": TEXTS[i % len(TEXTS)]},
            }
            t0 = time.perf_counter()
            r = await client.post(
                "/api/v1/inbound", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise RuntimeError(f"{r.status_code}: {r.text[:200]}")

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp()
    if args.db == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        cleanup = None
    else:
        name = f"careline_bench_{uuid.uuid4().hex[:8]}"
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}"],
            check=True,
        )
        url = args.pg.rsplit("/", 1)[0] + "/" + name
        cleanup = name
    token = "bench-" + uuid.uuid4().hex
    port = free_port()
    env = {
        **os.environ,
        "CARELINE_DATABASE_URL": url,
        "CARELINE_ADMIN_TOKEN": token,
        "CARELINE_LOG_LEVEL": "WARNING",
        # Measure the pipeline, not the per-token limiter.
        "CARELINE_RATE_LIMIT_API_PER_MIN": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "router.cli", "serve", "--port", str(port)], env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        asyncio.run(run(base, token, 50, 4))  # warm-up
        t0 = time.perf_counter()
        lat = asyncio.run(run(base, token, args.n, args.concurrency))
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(10)
        if cleanup:
            subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-qc",
                    f"DROP DATABASE {cleanup} WITH (FORCE)",
                ],
                check=False,
            )
    lat.sort()
    q = statistics.quantiles(lat, n=100)
    print(
        f"| {args.db} | {args.n} | {args.concurrency} | {args.n / wall:.0f} | "
        f"{q[49] * 1000:.1f} | {q[94] * 1000:.1f} | {q[98] * 1000:.1f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
