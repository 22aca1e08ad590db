"""`careline agent create` prints a console invitation; `careline demo` prints a sign-in per
demo agent and, run again, reuses them instead of creating a second set."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from sqlalchemy import func, select

from models import Agent, Conversation
from router.db import Database
from tests.integration.test_migrations_and_cli import run_cli


async def counts(url: str) -> tuple[int, int]:
    db = Database(url)
    try:
        async with db.session() as s:
            agents = await s.scalar(select(func.count()).select_from(Agent))
            convs = await s.scalar(select(func.count()).select_from(Conversation))
            return int(agents or 0), int(convs or 0)
    finally:
        await db.dispose()


def test_agent_create_prints_an_invitation_and_demo_reuses_its_agents(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    r = run_cli(
        "agent", "create", "--name", "Dr. Ruiz", "--role", "agent_l2",
        "--email", "ruiz@clinic.example", url=url, CARELINE_PUBLIC_URL="https://care.example",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    link = r"Console invitation .*: https://care\.example/console/#/invite/inv_\S+"
    assert re.search(link, r.stdout)
    r = run_cli("agent", "create", "--name", "No mail", "--role", "agent_l1", url=url)
    assert "give --email" in r.stdout

    first = run_cli("demo", "--no-serve", url=url)
    assert first.returncode == 0, first.stderr
    sign_ins = re.findall(r"(\S+@demo\.careline\.example)\s+(demo-\S+)", first.stdout)
    assert len(sign_ins) == 5  # every staff demo agent; the integration account has none
    assert "/console/" in first.stdout
    after_first = asyncio.run(counts(url))
    second = run_cli("demo", "--no-serve", url=url)
    assert second.returncode == 0, second.stderr
    assert asyncio.run(counts(url)) == after_first
    again = dict(re.findall(r"(\S+@demo\.careline\.example)\s+(demo-\S+)", second.stdout))
    assert set(again) == {e for e, _ in sign_ins}
    assert all(again[e] != p for e, p in sign_ins), "a fresh password on every run"
