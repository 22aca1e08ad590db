"""Lists a unit of work keeps in `session.info` that follow its savepoints: what a savepoint
recorded is dropped when it rolls back, and everything when the transaction does.

Events not yet written (`repo.events`) and the calls to make after the commit
(`router.wake.after_commit`) are such lists: a unit whose savepoint rolled back stored
nothing, so neither its events nor its after-commit calls may survive it.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

_KEYS: list[str] = []  # the session.info keys of the lists that follow savepoints
_MARKS = "careline.savepoints.marks"  # savepoint → each list's length when it began


def follow_savepoints(key: str) -> str:
    """Make the list at `session.info[key]` follow savepoints; returns `key`."""
    if key not in _KEYS:
        _KEYS.append(key)
    return key


@event.listens_for(Session, "after_transaction_create")
def _mark(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        marks: dict[SessionTransaction, dict[str, int]] = session.info.setdefault(_MARKS, {})
        marks[transaction] = {k: len(session.info.get(k) or ()) for k in _KEYS}


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    if previous.nested:
        mark = session.info.get(_MARKS, {}).pop(previous, None)
        for key, length in (mark or {}).items():
            found: list[object] | None = session.info.get(key)
            if found:
                del found[length:]
    elif previous.parent is None:
        for key in _KEYS:
            session.info.pop(key, None)
        session.info.pop(_MARKS, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_marks(session: Session, transaction: SessionTransaction) -> None:
    # A released savepoint's mark stays until then: the end of a savepoint comes before its
    # rollback event, so the mark cannot be dropped at its own end.
    if transaction.parent is None:
        session.info.pop(_MARKS, None)
