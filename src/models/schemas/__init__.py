"""API request and response bodies (pydantic v2)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from models.vocab import Priority, Role, Status, TextChannel

T = TypeVar("T")

Presence = Literal["online", "away", "offline"]
PriorityName = Priority
# Ids are 64-bit (BIGINT, SQLite INTEGER): a larger number is a 422 here, not a driver
# overflow (a 500) at the query.
MAX_ID = 2**63 - 1
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]
# The queue tier each role works; admin has none unless given one (it may read both).
ROLE_TIERS: dict[str, int] = {"agent_l1": 1, "agent_l2": 2, "supervisor": 2}


def _no_nul(value: Any) -> Any:
    return value.replace("\x00", "") if isinstance(value, str) else value


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role = "agent_l1"
    email: str | None = Field(default=None, max_length=320)
    tier: int | None = Field(default=None, ge=1, le=2)
    languages: list[str] = Field(default_factory=list, max_length=20)
    skills: list[str] = Field(default_factory=list, max_length=50)
    capacity: int = Field(default=5, ge=0, le=200)

    @model_validator(mode="after")
    def _tier_matches_role(self) -> AgentCreate:
        # Reading follows the role, assignment the tier: an `agent_l1` of tier 2 was handed
        # second-line (crisis) work it could not open. So the tier is the role's, or refused.
        role_tier = ROLE_TIERS.get(self.role)
        if self.tier is None:
            self.tier = role_tier
        elif self.role == "integration" or (role_tier is not None and self.tier != role_tier):
            raise ValueError(f"role {self.role} cannot have tier {self.tier}")
        return self


class AgentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: str
    email: str | None
    tier: int | None
    languages: list[str]
    skills: list[str]
    capacity: int
    presence: str
    presence_changed_at: datetime | None
    active: bool
    open_conversations: int = 0


class AgentCreated(AgentRead):
    token: str  # shown once


class PresenceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presence: Presence


class QueueRead(BaseModel):
    name: str
    title: str
    tier: int
    depth: int  # open, unassigned
    open: int  # open or pending, assigned or not
    oldest_wait_s: float | None
    online_agents: int
    expected_wait_s: int | None = None
    sla_breached_24h: int = 0
    sla_met_24h: int = 0


class SlaRead(BaseModel):
    kind: str
    state: str
    due_at: datetime | None
    time_left_s: float | None


class ConversationRead(BaseModel):
    id: int
    status: str
    queue: str | None
    priority: str
    assignee_id: int | None
    contact_id: int
    channel: str
    language: str | None
    subject: str | None
    tags: list[str]
    routing_reasons: list[str]
    sla: list[SlaRead]
    created_at: datetime
    updated_at: datetime | None
    last_inbound_at: datetime | None
    waiting_since: datetime | None
    resolved_at: datetime | None
    csat: int | None


class AttachmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    url: str
    mime: str | None
    size: int | None
    name: str | None


class MessageRead(BaseModel):
    id: int
    conversation_id: int
    direction: str
    channel: str
    kind: str
    text: str
    author_agent_id: int | None
    created_at: datetime
    sent_at: datetime | None
    delivery_status: str
    language: str | None
    attachments: list[AttachmentRead]
    error: str | None = None
    # For call log entries: status, direction, duration, agent, provider ids, transcript.
    call: dict[str, Any] | None = None


class ReplyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # NULs dropped: PostgreSQL refuses them in text (a 500), and nobody means one.
    text: Annotated[str, BeforeValidator(_no_nul)] = Field(min_length=1, max_length=20_000)
    internal: bool = False
    channel: TextChannel | None = None
    # Move the replies to another of the contact's identities (its id, from the contact):
    # they never move there on their own. Later replies follow it.
    identity_id: DbId | None = None


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: DbId | None = None  # None: unassign (managers) — use /claim to take it yourself
    reason: str = Field(default="", max_length=300)


class TransferBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str | None = Field(default=None, max_length=64)
    agent_id: DbId | None = None
    reason: str = Field(default="", max_length=300)


class EscalateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500)
    priority: PriorityName | None = None


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status


class IdentityRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int  # a reply's `identity_id`
    kind: str
    value: str
    verified: bool
    unreachable: bool


class ContactRead(BaseModel):
    id: int
    name: str | None
    attributes: dict[str, Any]
    merged_into_id: int | None
    identities: list[IdentityRead]
    created_at: datetime


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    other_contact_id: DbId


class InboundResult(BaseModel):
    conversation_id: int
    message_id: int
    duplicate: bool


class EventRead(BaseModel):
    id: int
    type: str
    conversation_id: int | None
    contact_id: int | None
    agent_id: int | None
    queue: str | None
    data: dict[str, Any]
    created_at: datetime
