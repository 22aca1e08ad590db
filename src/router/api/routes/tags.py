"""`POST /api/v1/conversations/{id}/tags`: agents tag what they can act on."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from models.schemas import ConversationRead
from router.api.deps import AgentDep, IdPath, RuntimeDep, SessionDep
from router.flows import tags
from router.read import conversations as reads

api_router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


class TagsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: list[str] = Field(default_factory=list, max_length=20)
    remove: list[str] = Field(default_factory=list, max_length=20)
    reason: str | None = Field(default=None, max_length=500)


@api_router.post("/{conversation_id}/tags", response_model=ConversationRead)
async def change_tags(
    conversation_id: IdPath, body: TagsBody, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> ConversationRead:
    """Add and remove tags (`a-z 0-9 _ -`, up to 40 characters). Adding `crisis` does what
    detection does: second line, urgent, the supervisor alert, the safe acknowledgement, a
    clinician, the on-call page if nobody answers; it needs a `reason`, and the events record
    who and why. Only second-line agents remove `crisis` or `urgent_medical`."""
    conv = await tags.change(
        session, rt, p, conversation_id, add=body.add, remove=body.remove, reason=body.reason
    )
    return (await reads.conversation_reads(session, rt, [conv]))[0]
