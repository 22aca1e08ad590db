"""Unknown query parameters answer 422 instead of being ignored, on every API route.

One router-level dependency (added in `create_app`) compares the request's query keys with
the parameters the matched route declares, its dependencies' included: a mistyped filter
(`?stauts=open`) then says so instead of silently listing everything.
"""

from __future__ import annotations

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.requests import HTTPConnection

from router.errors import InvalidInput

MAX_LISTED = 5


def declared(dependant: Dependant) -> frozenset[str]:
    """Every query parameter name of a route's dependency tree."""
    names: set[str] = set()
    stack = [dependant]
    while stack:
        d = stack.pop()
        names.update(f.alias for f in d.query_params)
        stack.extend(d.dependencies)
    return frozenset(names)


async def reject_unknown_query(conn: HTTPConnection) -> None:
    if not conn.url.path.startswith("/api/"):
        return
    route = conn.scope.get("route")
    if not isinstance(route, APIRoute | APIWebSocketRoute):
        return
    # Walked per request: a few dozen fields, cheaper than keeping a cache honest per app.
    known = declared(route.dependant)
    unknown = sorted({k for k in conn.query_params if k not in known})
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:MAX_LISTED])
        allowed = ", ".join(sorted(known)) or "none"
        raise InvalidInput(f"unknown query parameter(s) {shown}; this endpoint takes: {allowed}")
