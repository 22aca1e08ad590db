"""The words the whole system shares, each defined once: channels, priorities (with their
one order), statuses, roles and the channel_meta keys the router itself reads."""

from __future__ import annotations

from typing import Literal

ChannelName = Literal["telegram", "webchat", "email", "calls", "app"]
CHANNELS: tuple[ChannelName, ...] = ("telegram", "webchat", "email", "calls", "app")
# Channels that can carry a text reply; a phone call log cannot.
TextChannel = Literal["telegram", "webchat", "email", "app"]
TEXT_CHANNELS: tuple[TextChannel, ...] = ("telegram", "webchat", "email", "app")

Priority = Literal["low", "normal", "high", "urgent"]
# Lowest first: the index is the rank, and routing only ever moves a conversation up.
PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high", "urgent")
PRIORITY_RANK: dict[str, int] = {p: i for i, p in enumerate(PRIORITIES)}

Status = Literal["open", "pending", "resolved", "closed"]
STATUSES: tuple[Status, ...] = ("open", "pending", "resolved", "closed")
# A conversation someone is (or should be) working on.
ACTIVE_STATUSES: tuple[Status, ...] = ("open", "pending")

Role = Literal["agent_l1", "agent_l2", "supervisor", "admin", "integration"]
ROLES: tuple[Role, ...] = ("agent_l1", "agent_l2", "supervisor", "admin", "integration")
# Roles that are people answering customers (an integration is a machine; an admin does
# not take conversations).
WORKING_ROLES: tuple[Role, ...] = ("agent_l1", "agent_l2", "supervisor")

# Tags that make a conversation urgent for a clinician, above every capacity.
URGENT_TAGS: frozenset[str] = frozenset({"crisis", "urgent_medical"})

# channel_meta keys the router reads: who wrote an inbound message (its identity value),
# where a reply went, and, on a copy of a reply sent on another channel (web chat's mail
# fallback), the id of the original.
SENDER = "sender"
RECIPIENT = "recipient"
COPY_OF = "copy_of"
