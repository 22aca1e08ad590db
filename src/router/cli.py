"""`careline` command line: serve, migrate, demo, agent create, telegram poll."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from channels.base import ChannelSetupError
from models.vocab import ROLES
from router.bootstrap import load_plugins
from router.settings import Settings, get_settings


def _serve(settings: Settings, host: str, port: int, role: str = "all") -> None:
    import uvicorn

    from router.api import create_app
    from router.logs import configure

    configure(settings.log_level)
    if role == "api":
        settings = settings.model_copy(update={"run_workers": False})
    app = create_app(settings, role=role)
    # Headers/query strings can carry tokens, so uvicorn's access log stays off.
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None)


def _migrate(settings: Settings) -> None:
    from router.migrate import upgrade

    upgrade(settings.database_url)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="careline", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p_serve = sub.add_parser("serve", help="migrate the database, then serve HTTP")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8000)
    p_serve.add_argument(
        "--role",
        choices=["all", "api", "worker"],
        default="all",
        help="api: HTTP only; worker: outbox, SLA scheduler and sweeps only; all: both",
    )

    sub.add_parser("migrate", help="apply database migrations")

    p_demo = sub.add_parser("demo", help="seed queues, agents and sample conversations, then serve")
    p_demo.add_argument("--host", default="127.0.0.1")
    p_demo.add_argument("--port", type=int, default=8000)
    p_demo.add_argument("--no-serve", action="store_true", help="seed and print, do not serve")

    p_agent = sub.add_parser("agent", help="manage agents")
    agent_sub = p_agent.add_subparsers(dest="agent_cmd", required=True)
    p_create = agent_sub.add_parser("create", help="create an agent and print its token once")
    p_create.add_argument("--name", required=True)
    p_create.add_argument(
        "--role",
        default="agent_l1",
        choices=ROLES,
    )
    p_create.add_argument("--email")
    p_create.add_argument("--tier", type=int, choices=[1, 2])
    p_create.add_argument("--languages", default="", help="comma-separated, e.g. es,en")
    p_create.add_argument("--skills", default="")
    p_create.add_argument("--capacity", type=int, default=5)

    # Each channel brings its own tools (`careline telegram poll`), from the registry.
    settings = get_settings()
    plugins = {p.name: p for p in load_plugins(settings) if p.commands}
    for name, plugin in plugins.items():
        p_ch = sub.add_parser(name, help=f"{name} channel tools")
        ch_sub = p_ch.add_subparsers(dest="channel_cmd", required=True)
        for cmd, spec in plugin.commands.items():
            ch_sub.add_parser(cmd, help=spec.help)

    args = parser.parse_args(argv)
    if args.cmd in ("serve", "demo", "migrate"):
        # Refuse to start on a bad policy, naming the file, line and key, before touching data.
        from router.decide.policy import PolicyError, load_policy

        try:
            load_policy(settings.policy)
        except PolicyError as exc:
            print(f"careline: invalid policy: {exc}", file=sys.stderr)
            return 2

    if args.cmd == "migrate":
        _migrate(settings)
        print("database is at the latest migration")
        return 0
    if args.cmd == "serve":
        _migrate(settings)
        _serve(settings, args.host, args.port, args.role)
        return 0
    if args.cmd == "demo":
        from router.demo import seed

        _migrate(settings)
        text = asyncio.run(seed(settings, base_url=f"http://{args.host}:{args.port}"))
        print(text, flush=True)
        if not args.no_serve:
            _serve(settings, args.host, args.port)
        return 0
    if args.cmd == "agent" and args.agent_cmd == "create":
        from pydantic import ValidationError

        from models.schemas import AgentCreate
        from router.demo import create_agent

        try:
            body = AgentCreate(
                name=args.name,
                role=args.role,
                email=args.email,
                tier=args.tier,
                languages=[x for x in args.languages.split(",") if x],
                skills=[x for x in args.skills.split(",") if x],
                capacity=args.capacity,
            )
        except ValidationError as exc:
            msgs = "; ".join(str(e["msg"]) for e in exc.errors())
            print(f"careline: error: {msgs}", file=sys.stderr)
            return 2
        _migrate(settings)
        agent_id, token = asyncio.run(create_agent(settings, body))
        print(f"agent {agent_id} created ({args.role}). Token (shown once): {token}")
        from router.console.seed import invite

        if link := asyncio.run(invite(settings, agent_id)):
            print(f"Console invitation (one-time, sets the password): {link}")
        elif args.role != "integration":
            print("No console sign-in: give --email to get an invitation link.")
        return 0
    if args.cmd in plugins:
        from router.logs import configure

        spec = plugins[args.cmd].commands[args.channel_cmd]
        try:
            if spec.migrate:
                _migrate(settings)
                configure(settings.log_level)
            with contextlib.suppress(KeyboardInterrupt):
                out = asyncio.run(spec.run(settings))
                if out:
                    print(out)
            return 0
        except ChannelSetupError as exc:
            print(f"{args.cmd}: {exc}", file=sys.stderr)
            return 2
    parser.error("unknown command")
    return 2


if __name__ == "__main__":
    sys.exit(main())
