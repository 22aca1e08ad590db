"""`careline demo`: queues, agents with printed tokens and sample conversations on every
channel that exists, so a new user can `curl` something real within a minute."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from models import Message
from models.messages import InboundMessage, Sender
from models.schemas import AgentCreate
from router.bootstrap import build_runtime, sync_queues
from router.console import seed as console_seed
from router.flows import agents, ingest
from router.settings import Settings

DEMO_AGENTS = [
    AgentCreate(
        name="Lucía (bookings)",
        role="agent_l1",
        email="lucia@demo.careline.example",
        languages=["es", "en"],
        capacity=5,
    ),
    AgentCreate(
        name="Ivan (billing)",
        role="agent_l1",
        email="ivan@demo.careline.example",
        languages=["ru", "en"],
        capacity=5,
    ),
    AgentCreate(
        name="Dr. Marta Ruiz",
        role="agent_l2",
        email="ruiz@demo.careline.example",
        languages=["es", "en"],
        capacity=3,
    ),
    AgentCreate(
        name="Dr. Olga Petrova",
        role="agent_l2",
        email="petrova@demo.careline.example",
        languages=["ru", "en"],
        capacity=3,
    ),
    AgentCreate(
        name="Sam (supervisor)",
        role="supervisor",
        email="sam@demo.careline.example",
        languages=["en", "es", "ru"],
    ),
    AgentCreate(name="Clinic app back-end", role="integration", email="app@demo.careline.example"),
]

DEMO_MESSAGES = [
    (
        "app",
        "demo-ana",
        "Ana García",
        "+34 612 345 678",
        "Hola, quiero cambiar mi cita del jueves a la semana que viene",
    ),
    (
        "app",
        "demo-oleg",
        "Олег",
        "+7 912 345-67-89",
        "Здравствуйте, у меня после нового лекарства болит голова, это нормально?",
    ),
    ("app", "demo-john", "John Smith", None, "I was charged twice for my last video visit"),
    ("app", "demo-mia", "Mia", None, "I can't log in to the app, it says my password is wrong"),
]


async def create_agent(settings: Settings, body: AgentCreate) -> tuple[int, str]:
    rt = build_runtime(settings)
    try:
        async with rt.db.session() as session:
            agent, token = await agents.create(session, body)
            return agent.id, token
    finally:
        await rt.db.dispose()


async def seed(settings: Settings, *, base_url: str) -> str:
    rt = build_runtime(settings)
    lines = [f"Careline demo on {settings.database_url}", ""]
    try:
        await sync_queues(rt)
        # Re-running reuses the demo agents (by e-mail) and the sample messages (same ids,
        # so ingest de-duplicates them): new tokens and passwords, no second set.
        tokens: list[tuple[str, str, str]] = []
        sign_ins: list[tuple[str, str, str]] = []
        async with rt.db.session() as session:
            for body in DEMO_AGENTS:
                agent, token, password = await console_seed.demo_agent(session, rt, body)
                tokens.append((agent.name, agent.role, token))
                if password is not None:
                    sign_ins.append((agent.name, agent.email or "", password))
        now = rt.now()
        for i, (channel, ext, name, _phone, text) in enumerate(DEMO_MESSAGES):
            msg = InboundMessage(
                channel=channel,
                external_id=f"demo-{ext}-{i}",
                sender=Sender(external_id=ext, name=name, phone=None),
                text=text,
                received_at=now - timedelta(minutes=5 * (len(DEMO_MESSAGES) - i)),
            )
            async with rt.db.session() as session:
                await ingest.ingest(session, rt, msg)
        async with rt.db.session() as session:
            n = await session.scalar(select(func.count()).select_from(Message)) or 0
        lines.append("Agents (tokens are shown once):")
        for name, role, token in tokens:
            lines.append(f"  {role:<12} {name:<32} {token}")
        lines.append("")
        lines.append(f"Console: {base_url}/console/ (passwords are new on every run):")
        for name, email, password in sign_ins:
            lines.append(f"  {name:<32} {email:<32} {password}")
        sup = next(t for _, r, t in tokens if r == "supervisor")
        integ = next(t for _, r, t in tokens if r == "integration")
        lines += [
            "",
            f"{n} messages stored. Try:",
            f"  curl -s {base_url}/healthz",
            f"  curl -s -H 'Authorization: Bearer {sup}' {base_url}/api/v1/queues",
            f"  curl -s -H 'Authorization: Bearer {sup}' {base_url}/api/v1/conversations",
            f"  curl -s -H 'Authorization: Bearer {integ}' -H 'Content-Type: application/json' \\",
            f'       -d \'{{"contact": {{"external_id": "u1"}}, "message": '
            f'{{"external_id": "m1", "text": "Hello!"}}}}\' {base_url}/api/v1/inbound',
            f"  curl -N -H 'Authorization: Bearer {sup}' {base_url}/api/v1/events",
            f"  Web chat widget demo: {base_url}/webchat/demo",
            f"  Staff console: {base_url}/console/",
            f"  OpenAPI: {base_url}/docs",
        ]
        return "\n".join(lines)
    finally:
        for ch in rt.channels.values():
            await ch.aclose()
        await rt.db.dispose()
