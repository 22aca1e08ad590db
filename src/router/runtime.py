"""Everything a request or a job needs, built once at start-up (no globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from channels.base import ChannelAdapter
from models.base import utcnow
from router.db import Database
from router.events import EventBus
from router.policy import Policy
from router.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    db: Database
    policy: Policy
    channels: dict[str, ChannelAdapter]
    events: EventBus = field(default_factory=EventBus)
    outbox_wake: EventBus = field(default_factory=EventBus)
    sla_wake: EventBus = field(default_factory=EventBus)
    clock: Callable[[], datetime] = utcnow

    def __post_init__(self) -> None:
        # After every commit, wake live streams and the workers instead of waiting a poll.
        self.db.after_commit.extend([self.events.wake, self.outbox_wake.wake, self.sla_wake.wake])

    def now(self) -> datetime:
        return self.clock()
