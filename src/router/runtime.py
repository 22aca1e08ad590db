"""Everything a request or a job needs, built once at start-up (no globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from channels.base import ChannelAdapter, ConversationHooks
from models.base import utcnow
from router.bus import EventBus
from router.db import Database
from router.decide.policy import Policy
from router.group import GroupCommit
from router.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    db: Database
    policy: Policy
    channels: dict[str, ChannelAdapter]
    # The registered channels' hooks into the use cases (`channels.base.ConversationHooks`).
    hooks: list[ConversationHooks] = field(default_factory=list)
    events: EventBus = field(default_factory=EventBus)
    outbox_wake: EventBus = field(default_factory=EventBus)
    sla_wake: EventBus = field(default_factory=EventBus)
    clock: Callable[[], datetime] = utcnow
    group: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        # After a commit, wake what it concerns instead of waiting for a poll.
        self.db.after_commit.append(self.wake)
        self.group = GroupCommit(
            self.db,
            max_batch=max(1, self.settings.group_commit_max),
            runners=max(1, self.settings.group_commit_runners),
        )

    def now(self) -> datetime:
        return self.clock()

    def wake(self, topics: frozenset[str]) -> None:
        """Wake the waiters of `topics` (after a commit here, or a NOTIFY from elsewhere)."""
        if "events" in topics:
            self.events.wake()
        if "outbox" in topics:
            self.outbox_wake.wake()
