"""Real `careline serve` processes and a throwaway PostgreSQL cluster, for fault tests.

Fault tests need what a unit test cannot fake: a process killed with SIGKILL mid-request,
a database server that goes away and comes back. Everything here runs on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.server import free_port

PG_BIN = Path("/usr/lib/postgresql")


@dataclass
class Instance:
    """One `careline serve` process. Its log (JSON lines) is kept for the failure report."""

    proc: subprocess.Popen[bytes]
    base: str
    log_path: Path
    role: str

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, in-flight requests and leases are simply gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def wait_ready(
    base: str, within_s: float = 60.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"instance exited with {proc.returncode} before it was ready")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{base} not ready after {within_s} s")


def migrate(url: str) -> None:
    """Migrate once up front: two instances starting together would race on Alembic."""
    subprocess.run(
        [sys.executable, "-m", "router.cli", "migrate"],
        env={**os.environ, "CARELINE_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )


async def start_instance(
    env: dict[str, str], log_dir: Path, *, role: str = "all", port: int | None = None
) -> Instance:
    """Start `careline serve` (already-migrated database) and wait for /readyz."""
    port = port or free_port()
    log_path = log_dir / f"careline-{role}-{port}.log"
    proc = _spawn(env, log_path, port, role)
    inst = Instance(proc, f"http://127.0.0.1:{port}", log_path, role)
    try:
        await wait_ready(inst.base, proc=proc)
    except BaseException:
        inst.kill()
        raise
    return inst


def _spawn(env: dict[str, str], log_path: Path, port: int, role: str) -> subprocess.Popen[bytes]:
    """fork + exec returns at once; the wait for readiness is async (`wait_ready`)."""
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "router.cli", "serve", "--port", str(port), "--role", role],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database on the server at `admin_url`, dropped afterwards."""
    name = f"careline_fault_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@dataclass
class TempPostgres:
    """A private PostgreSQL cluster (initdb in a temp dir, own port) that a test may stop.

    Runs as the `postgres` user when we are root (the server refuses to run as root).
    """

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="careline-pg-")))

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def available() -> bool:
        return PG_BIN.is_dir() and any(PG_BIN.glob("*/bin/pg_ctl"))

    def _bin(self, name: str) -> str:
        return str(sorted(PG_BIN.glob(f"*/bin/{name}"))[-1])

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run(
            self._bin("initdb"), "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres"
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            self._bin("pg_ctl"),
            "-D",
            str(self.root / "data"),
            "-o",
            opts,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(self._bin("pg_ctl"), "-D", str(self.root / "data"), "-m", mode, "-w", "stop")

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def temp_postgres() -> Iterator[TempPostgres]:
    pg = TempPostgres()
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.cleanup()
