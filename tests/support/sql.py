"""Record the SQL a block of code sends, as the connection sees it (not timed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from router.runtime import Runtime


@contextmanager
def recorded(rt: Runtime) -> Iterator[list[str]]:
    """Every statement sent while the block runs, whitespace folded to single spaces."""
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = rt.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
