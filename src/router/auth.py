"""Bearer tokens, principals and who may see what."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

AGENT_ROLES = frozenset({"agent_l1", "agent_l2", "supervisor", "admin"})
MANAGER_ROLES = frozenset({"supervisor", "admin"})


def new_token() -> str:
    return "cl_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    role: str
    agent_id: int | None  # None for the bootstrap admin token
    tier: int | None = None
    name: str = ""

    @property
    def is_manager(self) -> bool:
        return self.role in MANAGER_ROLES

    @property
    def max_tier(self) -> int:
        """Highest queue tier this principal may read."""
        if self.role == "agent_l1":
            return 1
        if self.role in AGENT_ROLES:
            return 2
        return 0  # integration accounts read no conversations


def can_read_tier(p: Principal, tier: int) -> bool:
    return tier <= p.max_tier
