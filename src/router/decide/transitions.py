"""The conversation status machine: which status may follow which."""

from __future__ import annotations

ALLOWED: dict[str, frozenset[str]] = {
    "open": frozenset({"pending", "resolved", "closed"}),
    "pending": frozenset({"open", "resolved", "closed"}),
    "resolved": frozenset({"open", "closed"}),
    "closed": frozenset(),  # final: a new message starts a new conversation
}


def allowed(current: str, target: str) -> bool:
    """Whether an agent may move a conversation from `current` to `target`."""
    return target in ALLOWED.get(current, frozenset())
