"""The FastAPI application: `create_app()` wires the runtime, routes and background workers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from router import __version__
from router.api import problems
from router.api.limits import BodyLimitMiddleware
from router.api.query import reject_unknown_query
from router.api.ratelimit import RateLimitMiddleware, TokenBuckets
from router.api.routes import (
    agents,
    attachments,
    audit,
    callbacks,
    canned,
    contacts,
    conversations,
    events,
    health,
    queues,
    reports,
    search,
    tags,
)
from router.api.transport import TransportMiddleware
from router.bootstrap import build_runtime, load_plugins, sync_queues
from router.console import api as console_api
from router.console import docs as console_docs
from router.console import presence as console_presence
from router.console import routes as console_routes
from router.decide import language, learned
from router.runtime import Runtime
from router.settings import Settings, get_settings
from router.workers import listen
from router.workers.callbacks import run_scheduler
from router.workers.outbox import OutboxWorker
from router.workers.pages import PageWorker
from router.workers.sla import SlaScheduler
from router.workers.sweeper import Sweeper

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, runtime: Runtime | None = None, *, role: str = "all"
) -> FastAPI:
    """Build the app. Tests pass their own runtime (database, fake channels, clock).

    `role="worker"` serves only the health and metrics endpoints (for probes) next to the
    background workers; `role="api"` is chosen by turning `run_workers` off.
    """

    cfg = settings or (runtime.settings if runtime is not None else get_settings())
    # The channels come from the registry module named in the settings: the router knows
    # only their interface (`channels.base`).
    plugins = load_plugins(cfg)
    if runtime is not None and not runtime.hooks:
        # A runtime built by a test with its own adapters still gets the channels' hooks.
        runtime.hooks = [p.hooks for p in plugins if p.hooks is not None]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or build_runtime(cfg, plugins)
        app.state.runtime = rt
        await sync_queues(rt)
        # Load the language and crisis models now (about 2 s) rather than on the first
        # customer message (which may be the crisis).
        await asyncio.to_thread(language.warm_up)
        await asyncio.to_thread(learned.warm_up)
        # Start-up leaves ~300k long-lived objects (routes, policy, models, SQLAlchemy's
        # caches). Frozen, the collector stops re-scanning them: a full collection took
        # ~160 ms (a p99 ack stall) and now scans only what requests create.
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        # Every instance listens (API instances serve streams and sockets too).
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(listen.listen(rt, stop), name="listen")
        ]
        if rt.settings.run_workers:
            tasks += [
                asyncio.create_task(OutboxWorker(rt).run(stop), name="outbox"),
                asyncio.create_task(PageWorker(rt).run(stop), name="pages"),
                asyncio.create_task(SlaScheduler(rt).run(stop), name="sla"),
                asyncio.create_task(Sweeper(rt).run(stop), name="sweeper"),
                asyncio.create_task(run_scheduler(rt, stop), name="callbacks"),
                asyncio.create_task(console_presence.run(rt, stop), name="console-presence"),
            ]
            tasks += [
                asyncio.create_task(work(rt, stop), name=name)
                for p in plugins
                for name, work in p.workers
            ]
        try:
            yield
        finally:
            stop.set()
            rt.outbox_wake.wake()
            rt.sla_wake.wake()
            for t in tasks:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            if runtime is None:
                for ch in rt.channels.values():
                    await ch.aclose()
                await rt.db.dispose()

    app = FastAPI(
        title="Careline",
        version=__version__,
        description="Omnichannel message router for support teams whose conversations matter.",
        lifespan=lifespan,
        docs_url=None,  # served from the installed Swagger UI package (router.console.docs)
    )
    problems.install(app)
    console_docs.install(app)
    app.add_middleware(
        RateLimitMiddleware,
        api=TokenBuckets(cfg.rate_limit_api_per_min, cfg.rate_limit_api_burst)
        if cfg.rate_limit_api_per_min > 0
        else None,
        webhooks=TokenBuckets(cfg.rate_limit_webhooks_per_min, cfg.rate_limit_webhooks_burst)
        if cfg.rate_limit_webhooks_per_min > 0
        else None,
        integration=TokenBuckets(
            cfg.rate_limit_integration_per_min, cfg.rate_limit_integration_burst
        )
        if cfg.rate_limit_integration_per_min > 0
        else None,
    )
    # Outermost (added last): an oversized body is refused before anything else runs.
    app.add_middleware(
        BodyLimitMiddleware,
        limits=[
            ("/webhooks/email", cfg.email_max_bytes),
            ("/webhooks/", cfg.max_body_bytes),
            ("/api/", cfg.api_max_body_bytes),
        ],
        default=cfg.api_max_body_bytes,
    )
    # Outside even that: it must see the server's own `send` (see router.api.transport).
    app.add_middleware(TransportMiddleware)
    core = (
        health,
        agents,
        queues,
        conversations,
        attachments,
        contacts,
        events,
        callbacks,
        search,
        tags,
        canned,
        reports,
        audit,
        console_routes,
        console_api,
    )
    routers = [m.api_router for m in core]
    routers += [p.router for p in plugins if p.router is not None]
    for router in routers if role != "worker" else [health.api_router]:
        # Unknown query parameters on /api/ routes answer 422 (router.api.query).
        app.include_router(router, dependencies=[Depends(reject_unknown_query)])
    return app
